"""Path resolution inside archives: items, redirects, main page, random, old namespaces."""

from pathlib import Path

from libzim.reader import Archive

from appliance.content.reader import Outcome, is_html, main_path, random_path, resolve


def test_item_and_mimetype(zim_dir: Path) -> None:
    archive = Archive(zim_dir / "testbook.zim")
    found = resolve(archive, "a/photosynthesis")
    assert found.outcome is Outcome.ITEM
    assert found.mimetype == "text/html"
    assert b"Plants turn light into sugar" in found.content
    png = resolve(archive, "img/logo.png")
    assert png.mimetype == "image/png"
    assert png.content.startswith(b"\x89PNG")


def test_awkward_paths(zim_dir: Path) -> None:
    archive = Archive(zim_dir / "testbook.zim")
    for path in ("a/q?x&y#z", "a/with space", "a/café"):
        assert resolve(archive, path).outcome is Outcome.ITEM, path
    assert resolve(archive, "a/nothing").outcome is Outcome.MISSING


def test_redirect_is_reported_not_followed(zim_dir: Path) -> None:
    archive = Archive(zim_dir / "testbook.zim")
    hop = resolve(archive, "a/Photo")
    assert hop.outcome is Outcome.REDIRECT
    assert hop.path == "a/photosynthesis"


def test_main_page(zim_dir: Path) -> None:
    assert main_path(Archive(zim_dir / "testbook.zim")) == "home"
    assert main_path(Archive(zim_dir / "nomain.zim")) is None
    assert main_path(Archive(zim_dir / "example.zim")) not in (None, "mainPage")
    assert main_path(Archive(zim_dir / "zimfile.zim")) == "A/index"


def test_old_namespace_bare_path(zim_dir: Path) -> None:
    archive = Archive(zim_dir / "zimfile.zim")
    assert resolve(archive, "index").outcome is Outcome.ITEM
    assert resolve(archive, "A/index").outcome is Outcome.ITEM


def test_random_respects_filter(zim_dir: Path) -> None:
    archive = Archive(zim_dir / "testbook.zim")
    for _ in range(20):
        path = random_path(archive, lambda p: not p.startswith("secret/"))
        assert path is not None
        assert not path.startswith("secret/")
    assert random_path(archive, lambda _p: False) is None
    assert random_path(Archive(zim_dir / "empty.zim"), lambda _p: True) is None


def test_is_html() -> None:
    assert is_html("text/html; charset=utf-8")
    assert not is_html("image/png")
