"""Fixtures of the content tests: archives built with libzim's writer plus the shared real ZIMs."""

import shutil
from pathlib import Path

import pytest

from tests.content.zimbuilder import build_zim, default_spec, truncated_copy

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="session")
def zim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with every kind of archive the tests need, built once per session."""
    root = tmp_path_factory.mktemp("zims")
    build_zim(root / "testbook.zim")
    build_zim(root / "noindex.zim", default_spec(index=False, name="noindex", title="No Index"))
    build_zim(root / "nomain.zim", default_spec(main=None, name="nomain", title="No Main"))
    build_zim(root / "empty.zim", default_spec(empty=True, name="empty", title="Empty"))
    truncated_copy(root / "testbook.zim", root / "corrupt.zim")
    (root / "notes.zim").write_text("this is a text file, not an archive\n")
    for real in ("example.zim", "zimfile.zim"):
        shutil.copy(DATA / real, root / real)
    return root


@pytest.fixture
def content_root(tmp_path: Path, zim_dir: Path) -> Path:
    """A fresh content root holding copies of the good test archives."""
    root = tmp_path / "zim"
    root.mkdir()
    for name in ("testbook.zim", "noindex.zim", "zimfile.zim"):
        shutil.copy(zim_dir / name, root / name)
    return root
