"""Small per-process caches of search pages and suggestion lists: a class asking the same thing pays once."""

import time
from collections import OrderedDict
from typing import Any

from appliance.content.searchworker import BookRef


class SearchCache:
    """LRU of search outcomes (or suggestion lists) keyed by the exact books (uuid and block list included),
    the normalized query and the page."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        # Raw query strings of cached pages: lets the admission check (which runs before we know the
        # caller's books) pass requests that will probably be answered from the cache.
        self.recent: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def key(books: list[BookRef], query: str, start: int, count: int) -> tuple[Any, ...]:
        """A replaced archive (new uuid) or a changed block list gives a new key, so nothing stale is served."""
        return (tuple(books), " ".join(query.lower().split()), start, count)

    @staticmethod
    def suggest_key(book: BookRef, query: str, count: int) -> tuple[Any, ...]:
        """Like key, for one book's suggestions. Case is kept: for an older archive without a title index
        libzim matches title prefixes as typed."""
        return ("suggest", book, " ".join(query.split()), count)

    def get(self, key: tuple[Any, ...]) -> Any | None:
        """The cached outcome, if fresh."""
        found = self._items.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl_s:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: tuple[Any, ...], value: Any, query_string: str = "") -> None:
        """Remember an outcome, evicting the least recently used beyond max_entries."""
        if self.max_entries <= 0:
            return
        self.recent[query_string] = None
        while len(self.recent) > self.max_entries:
            self.recent.popitem(last=False)
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
