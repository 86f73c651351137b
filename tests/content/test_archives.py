"""Archive discovery, naming and metadata."""

from pathlib import Path

import pytest

from appliance.content.archives import LibraryState, inspect_archive, scan_directory
from appliance.content.names import book_slug, undated_alias


@pytest.mark.parametrize(("file", "slug"), [
    ("wikipedia_en_all_maxi_2024-01.zim", "wikipedia_en_all_maxi_2024-01"),
    ("Café Crème.zim", "cafe_creme"),
    ("C++ Docs.ZIM", "cplusplus_docs"),
    ("weird#name?.zim", "weird_name_"),
])
def test_slug_derived_like_kiwix(file: str, slug: str) -> None:
    assert book_slug(file) == slug


def test_undated_alias() -> None:
    assert undated_alias("wikipedia_en_all_2020-08") == "wikipedia_en_all"
    assert undated_alias("devdocs_en_python") is None


def test_metadata_of_built_archive(zim_dir: Path) -> None:
    info = inspect_archive(zim_dir / "testbook.zim")
    assert info.state is LibraryState.READY
    assert (info.name, info.title, info.language, info.category) == ("testbook", "Test Book", "eng", "test")
    assert info.has_fulltext_index
    assert info.has_main_page
    assert info.article_count == 38
    assert info.media_count >= 2
    assert info.illustration is not None
    assert info.illustration.startswith(b"\x89PNG")
    assert len(info.uuid or "") == 36


def test_real_archives(zim_dir: Path) -> None:
    old = inspect_archive(zim_dir / "zimfile.zim")
    assert old.state is LibraryState.READY
    assert old.name == "wikipedia_en_ray_charles"
    assert old.has_main_page
    new = inspect_archive(zim_dir / "example.zim")
    assert new.state is LibraryState.READY
    assert new.has_fulltext_index
    assert new.has_main_page


def test_variants(zim_dir: Path) -> None:
    assert not inspect_archive(zim_dir / "noindex.zim").has_fulltext_index
    assert not inspect_archive(zim_dir / "nomain.zim").has_main_page
    empty = inspect_archive(zim_dir / "empty.zim")
    assert empty.state is LibraryState.READY
    assert empty.article_count == 0
    assert not empty.has_main_page


@pytest.mark.parametrize(("file", "reason"), [
    ("corrupt.zim", "corrupted"), ("notes.zim", "not a ZIM file"),
])
def test_bad_files_become_error_state(zim_dir: Path, file: str, reason: str) -> None:
    info = inspect_archive(zim_dir / file)
    assert info.state is LibraryState.ERROR
    assert reason in (info.error or "")
    assert info.uuid
    assert info.uuid.startswith("error-")


def test_zero_byte_and_vanished_files(tmp_path: Path) -> None:
    (tmp_path / "zero.zim").write_bytes(b"")
    assert inspect_archive(tmp_path / "zero.zim").error == "ValueError: empty file"
    assert inspect_archive(tmp_path / "gone.zim").state is LibraryState.ERROR


def test_scan_skips_hidden_partial_downloads(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.zim", "sub/b.zim", ".c.zim.part.zim", "d.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in scan_directory(tmp_path)] == ["a.zim", "b.zim"]
    assert scan_directory(tmp_path / "nope") == []
