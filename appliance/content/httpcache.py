"""HTTP caching, Range and gzip decisions for archive entries (pure functions plus a byte-bounded LRU)."""

import enum
import functools
import gzip
import re
from collections import OrderedDict
from dataclasses import dataclass

GZIP_MIN_BYTES = 1400
IMMUTABLE = "public, max-age=31536000, immutable"
_COMPRESSIBLE = ("text/", "application/javascript", "application/json", "application/xml",
                 "application/atom+xml", "application/opensearchdescription+xml", "image/svg+xml",
                 "application/x-javascript", "font/", "application/font", "application/vnd.ms-fontobject")
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeKind(enum.Enum):
    """How a Range header applies to a body."""

    NONE = "none"
    PARTIAL = "partial"
    UNSATISFIABLE = "unsatisfiable"


@dataclass(frozen=True)
class ByteRange:
    """Decision on a Range header: whole body, a slice [start, end], or 416."""

    kind: RangeKind
    start: int = 0
    end: int = 0


def etag(uuid: str, index: int, gzipped: bool = False) -> str:
    """Strong ETag: content of an archive uuid never changes, so uuid + entry index identifies the bytes."""
    return f'"{uuid}-{index}{"-gz" if gzipped else ""}"'


def not_modified(if_none_match: str | None, uuid: str, index: int) -> bool:
    """Whether If-None-Match names this entry (either encoding, or *)."""
    if not if_none_match:
        return False
    wanted = {etag(uuid, index), etag(uuid, index, True)}
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag in wanted:
            return True
    return False


def parse_range(header: str | None, size: int) -> ByteRange:
    """One `bytes=` range against size; malformed or multi-range headers are ignored (RFC 9110)."""
    if not header:
        return ByteRange(RangeKind.NONE)
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return ByteRange(RangeKind.NONE)
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return ByteRange(RangeKind.UNSATISFIABLE)
        return ByteRange(RangeKind.PARTIAL, max(0, size - n), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        return ByteRange(RangeKind.UNSATISFIABLE)
    if end < start:
        return ByteRange(RangeKind.NONE)
    return ByteRange(RangeKind.PARTIAL, start, min(end, size - 1))


def compressible(mimetype: str, size: int) -> bool:
    """kiwix-serve's rule: text-like types above one MTU."""
    return size > GZIP_MIN_BYTES and mimetype.startswith(_COMPRESSIBLE)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether the client accepts gzip (q=0 means refused)."""
    if not accept_encoding:
        return False
    return _accepts_gzip(accept_encoding) if len(accept_encoding) <= 200 else _parse_gzip(accept_encoding)


@functools.lru_cache(maxsize=64)  # browsers send one of a handful of values: parse each once
def _accepts_gzip(accept_encoding: str) -> bool:
    return _parse_gzip(accept_encoding)


def _parse_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            return "q=0" not in params.replace(" ", "") or "q=0." in params.replace(" ", "")
    return False


def compress(body: bytes) -> bytes:
    """gzip at level 6 with a fixed mtime, so the same entry always compresses to the same bytes."""
    return gzip.compress(body, compresslevel=6, mtime=0)


class GzipCache:
    """Compressed bodies kept up to a byte budget, so a popular page is compressed once per process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def lookup(self, uuid: str, index: int) -> bytes | None:
        """The cached gzip of an entry, if any."""
        key = (uuid, index)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def get(self, uuid: str, index: int, body: bytes) -> bytes:
        """The gzip of body, from the cache when present (compresses on a miss: call it off the event loop)."""
        hit = self.lookup(uuid, index)
        if hit is not None:
            return hit
        packed = compress(body)
        self.store(uuid, index, packed)
        return packed

    def store(self, uuid: str, index: int, packed: bytes) -> None:
        """Keep a compressed body, evicting the least recently used beyond the byte budget."""
        key = (uuid, index)
        if key in self._items:
            return
        if len(packed) <= self.max_bytes:
            self._items[key] = packed
            self.used += len(packed)
            while self.used > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.used -= len(old)
        return packed
