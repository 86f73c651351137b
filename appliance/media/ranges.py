"""HTTP Range header parsing for video streaming (one byte range per request)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(Exception):
    """The header is malformed or asks for bytes the object does not have (answer 416)."""


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range inside an object of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    def content_range(self) -> str:
        """Value of the Content-Range header."""
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Return the requested range, None for a whole-object request, or raise RangeNotSatisfiable.

    Malformed headers and several ranges answer 416, as aiohttp's FileResponse does for the disk
    backend, so both backends behave the same.
    """
    if header is None:
        return None
    match = _SPEC.match(header)
    if match is None:
        raise RangeNotSatisfiable(f"malformed Range header {header[:80]!r}")
    first, last = match.group(1), match.group(2)
    if not first and not last:
        raise RangeNotSatisfiable("empty byte range")
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable("empty suffix range")
        return ByteRange(max(0, size - n), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise RangeNotSatisfiable("range end before start")
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at {start}, object has {size} bytes")
    return ByteRange(start, min(end, size - 1), size)
