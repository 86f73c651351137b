"""Range header parsing."""

import pytest

from appliance.media.ranges import ByteRange, RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", ByteRange(0, 99, 1000)),
        ("bytes=500-", ByteRange(500, 999, 1000)),
        ("bytes=-100", ByteRange(900, 999, 1000)),
        ("bytes=-5000", ByteRange(0, 999, 1000)),
        ("bytes=990-5000", ByteRange(990, 999, 1000)),
        ("bytes = 1 - 2", ByteRange(1, 2, 1000)),
    ],
)
def test_valid_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header",
    ["bytes=999999999-", "bytes=1000-", "bytes=5-1", "bytes=-0", "bytes=-", "items=0-1", "bytes=a-b", "garbage",
     "bytes=0-1,5-6", "bytes=--1", ""],
)
def test_unsatisfiable_or_malformed(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)


def test_content_range_and_length() -> None:
    r = parse_range("bytes=10-19", 100)
    assert r is not None
    assert (r.length, r.content_range()) == (10, "bytes 10-19/100")


def test_empty_object_suffix_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-10", 0)
