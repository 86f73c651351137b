"""Sanitising uploaded file names."""

import pytest

from appliance.media.filenames import sanitize_filename, title_from_filename


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.mp4", "evil.mp4"),
        ("lecture 1.mp4", "lecture 1.mp4"),
        ("..", "video.mp4"),
        ("", "video.mp4"),
        ("a\x00b\nc.mp4", "abc.mp4"),
        ("$(rm -rf).mp4", "rm -rf_.mp4"),
        ("x...mp4", "x.mp4"),
        (".hidden.mp4", "hidden.mp4"),
    ],
)
def test_sanitize(raw: str, clean: str) -> None:
    assert sanitize_filename(raw) == clean


def test_long_names_keep_extension() -> None:
    name = sanitize_filename("a" * 500 + ".mp4")
    assert len(name) <= 120
    assert name.endswith(".mp4")


def test_title() -> None:
    assert title_from_filename("../My_lecture.mp4") == "My lecture"
