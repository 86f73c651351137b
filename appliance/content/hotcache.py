"""Recently served archive entries, resolved and ready to send, kept in each process up to a byte budget.

A hit is answered on the event loop without a hop to the `zim` thread pool: the entry's bytes, its
response headers (type, cache policy, ETag, Vary) built once, and, for compressible types, the gzip body
made once. Entries of an archive never change (its uuid names the bytes), so nothing here goes stale; a
library that is replaced gets a new uuid and its old entries age out. Access (visibility, block lists,
the content pass) is checked on every request before the cache is consulted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from appliance.content.httpcache import IMMUTABLE, compressible, etag
from appliance.content.reader import is_html

HTML_CACHE = "private, no-cache"  # revalidate (cheap 304) so block lists apply and re-reads are counted
# Assets of a signed-in reader may be of a library anonymous readers can't see: no shared cache keeps them.
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
# Per-entry bookkeeping (key, object, header dicts) counted against the budget besides the bodies.
OVERHEAD_BYTES = 600
# One entry may take at most this share of the budget, so a few big videos cannot flush every page.
MAX_SHARE = 16


@dataclass
class HotEntry:
    """One resolved item: what the response needs, computed once."""

    uuid: str
    index: int
    path: str  # the item's own path (differs from the request's for old-namespace archives)
    title: str
    mimetype: str
    body: bytes
    html: bool
    zippable: bool
    packed: bytes | None = None  # the gzip body, once made
    # (gzipped, signed_in) -> response headers; the content origin adds CSP and nosniff on prepare.
    headers: dict[tuple[bool, bool], dict[str, str]] = field(default_factory=dict)
    # (status, gzipped, signed_in) -> the response head as sent by the content origin's own connections.
    wire: dict[tuple[int, bool, bool], bytes] = field(default_factory=dict)

    @classmethod
    def make(cls, uuid: str, index: int, path: str, title: str, mimetype: str, body: bytes) -> HotEntry:
        """An entry with its type decisions made."""
        return cls(uuid, index, path, title, mimetype, body, is_html(mimetype), compressible(mimetype, len(body)))

    @property
    def content_type(self) -> str:
        """The Content-Type sent (parameters of the archive's mimetype dropped, as before)."""
        return self.mimetype.split(";")[0].strip() or "application/octet-stream"

    @property
    def size(self) -> int:
        """Bytes this entry holds against the budget."""
        return len(self.body) + (len(self.packed) if self.packed is not None else 0) + OVERHEAD_BYTES

    def response_headers(self, gzipped: bool, signed_in: bool) -> dict[str, str]:
        """The 200 response's headers (a shared dict: copy before changing it)."""
        key = (gzipped, signed_in)
        found = self.headers.get(key)
        if found is None:
            cache = HTML_CACHE if self.html else PRIVATE_IMMUTABLE if signed_in else IMMUTABLE
            found = {"Cache-Control": cache, "Accept-Ranges": "bytes", "Content-Type": self.content_type,
                     "ETag": etag(self.uuid, self.index, gzipped)}
            if self.zippable:
                found["Vary"] = "Accept-Encoding"
            if gzipped:
                found["Content-Encoding"] = "gzip"
            self.headers[key] = found
        return found


class HotCache:
    """Entries keyed by (archive uuid, request path), least recently used dropped beyond max_bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[str, str], HotEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, uuid: str, path: str) -> HotEntry | None:
        """The entry served for this request path of that archive, if held."""
        key = (uuid, path)
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return found

    def peek(self, uuid: str, path: str) -> HotEntry | None:
        """Like get, but a miss is not counted (the request goes on to the full path, which counts it)."""
        key = (uuid, path)
        found = self._items.get(key)
        if found is not None:
            self.hits += 1
            self._items.move_to_end(key)
        return found

    def fits(self, size: int) -> bool:
        """Whether an entry of size bytes is small enough to be kept."""
        return size + OVERHEAD_BYTES <= self.max_bytes // MAX_SHARE

    def put(self, path: str, entry: HotEntry) -> None:
        """Keep an entry under the request path it answered (a no-op when too big or the cache is off)."""
        if not self.fits(len(entry.body)):
            return
        key = (entry.uuid, path)
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old.size
        self._items[key] = entry
        self.used += entry.size
        self._evict()

    def attach_gzip(self, path: str, entry: HotEntry, packed: bytes) -> bool:
        """Record an entry's gzip body; False when the entry is not held here (too big, or evicted)."""
        held = self._items.get((entry.uuid, path)) is entry
        if entry.packed is None:
            entry.packed = packed
            if held:
                self.used += len(packed)
                self._evict()
        return held

    def _evict(self) -> None:
        while self.used > self.max_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self.used -= old.size
