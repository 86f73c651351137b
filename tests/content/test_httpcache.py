"""ETag, Range and gzip decisions."""

import gzip

import pytest

from appliance.content.httpcache import (
    ByteRange,
    GzipCache,
    RangeKind,
    accepts_gzip,
    compressible,
    etag,
    not_modified,
    parse_range,
)


@pytest.mark.parametrize(("header", "expected"), [
    (None, ByteRange(RangeKind.NONE)),
    ("bytes=0-9", ByteRange(RangeKind.PARTIAL, 0, 9)),
    ("bytes=90-", ByteRange(RangeKind.PARTIAL, 90, 99)),
    ("bytes=-10", ByteRange(RangeKind.PARTIAL, 90, 99)),
    ("bytes=-1000", ByteRange(RangeKind.PARTIAL, 0, 99)),
    ("bytes=50-5000", ByteRange(RangeKind.PARTIAL, 50, 99)),
    ("bytes=100-", ByteRange(RangeKind.UNSATISFIABLE)),
    ("bytes=-0", ByteRange(RangeKind.UNSATISFIABLE)),
    ("bytes=9-3", ByteRange(RangeKind.NONE)),
    ("bytes=0-1,5-6", ByteRange(RangeKind.NONE)),
    ("items=0-1", ByteRange(RangeKind.NONE)),
    ("bytes=-", ByteRange(RangeKind.NONE)),
])
def test_parse_range(header: str | None, expected: ByteRange) -> None:
    assert parse_range(header, 100) == expected


def test_etag_and_if_none_match() -> None:
    tag = etag("u1", 7)
    assert tag == '"u1-7"'
    assert etag("u1", 7, True) == '"u1-7-gz"'
    assert not_modified(tag, "u1", 7)
    assert not_modified('"x", W/"u1-7-gz"', "u1", 7)
    assert not_modified("*", "u1", 7)
    assert not not_modified('"u1-8"', "u1", 7)
    assert not not_modified(None, "u1", 7)


def test_gzip_rules() -> None:
    assert compressible("text/html", 1401)
    assert not compressible("text/html", 1400)
    assert compressible("application/javascript", 5000)
    assert not compressible("image/png", 5000)
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("br")
    assert not accepts_gzip(None)


def test_gzip_cache_is_byte_bounded() -> None:
    cache = GzipCache(max_bytes=200)
    body = b"abc" * 1000
    first = cache.get("u", 1, body)
    assert gzip.decompress(first) == body
    assert cache.get("u", 1, body) is first
    for i in range(2, 40):
        cache.get("u", i, bytes([i]) * 3000)
    assert cache.used <= 200
