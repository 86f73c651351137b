"""Code that runs inside a search process: one Archive and Searcher per book, used by one thread only."""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from libzim.reader import Archive, set_cluster_cache_max_size
from libzim.search import Query, Searcher
from libzim.suggestion import SuggestionSearcher

from appliance.content.blocklist import matcher
from appliance.content.snippets import query_terms, snippet

MAX_SCAN = 400  # result paths examined per book (cheap: paths only) to fill a page past blocked ones


@dataclass(frozen=True)
class BookRef:
    """A book as the search process sees it: where it is and what is blocked in it."""

    slug: str
    path: str
    uuid: str
    block_regex: str = ""


@dataclass
class Hit:
    """One search result."""

    book: str
    path: str
    title: str
    match: str
    snippet: str | None = None


@dataclass
class SearchOutcome:
    """A page of results plus what the caller needs to say about them."""

    total: int
    hits: list[Hit] = field(default_factory=list)
    title_only_books: list[str] = field(default_factory=list)
    snippets_truncated: bool = False


class _Open:
    """The per-process handles of one archive."""

    def __init__(self, path: str) -> None:
        self.archive = Archive(Path(path))
        self._searcher: Searcher | None = None
        self._suggester: SuggestionSearcher | None = None

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.archive)
        return self._searcher

    @property
    def suggester(self) -> SuggestionSearcher:
        if self._suggester is None:
            self._suggester = SuggestionSearcher(self.archive)
        return self._suggester


_OPEN: dict[tuple[str, str], _Open] = {}


def init_process(cluster_cache_bytes: int, niceness: int = 0) -> None:
    """Process initializer: size the (process-global) cluster cache; lower the priority below article serving."""
    set_cluster_cache_max_size(cluster_cache_bytes)
    if niceness:
        os.nice(niceness)


def _handle(book: BookRef) -> _Open:
    """Open once per (path, uuid): a replaced file gets a fresh handle."""
    key = (book.path, book.uuid)
    handle = _OPEN.get(key)
    if handle is None:
        for old in [k for k in _OPEN if k[0] == book.path]:
            del _OPEN[old]
        handle = _OPEN[key] = _Open(book.path)
    return handle


def _paths(handle: _Open, query: str, want: int) -> tuple[int, list[str], str]:
    """Ranked paths from the full-text index, or from the title index when there is none."""
    if handle.archive.has_fulltext_index:
        search = handle.searcher.search(Query().set_query(query))
        return search.getEstimatedMatches(), list(search.getResults(0, want)), "fulltext"
    sugg = handle.suggester.suggest(query)
    return sugg.getEstimatedMatches(), list(sugg.getResults(0, want)), "title"


def search(books: list[BookRef], query: str, start: int, count: int,
           snippet_budget_s: float, max_snippets: int) -> SearchOutcome:
    """Search every book, interleave their ranked lists, and add snippets for the returned page only."""
    want = min(start + count, MAX_SCAN)
    per_book: list[list[Hit]] = []
    outcome = SearchOutcome(total=0)
    for book in books:
        try:
            handle = _handle(book)
            total, paths, match = _paths(handle, query, want + 20)
        except Exception:  # noqa: S112 - an unreadable book contributes nothing; the others still answer
            continue
        blocked = matcher(book.block_regex)
        kept = [p for p in paths if not blocked(p)]
        outcome.total += max(0, total - (len(paths) - len(kept)))
        kept = kept[:want]
        if match == "title":
            outcome.title_only_books.append(book.slug)
        per_book.append([Hit(book.slug, p, "", match) for p in kept])
    merged: list[Hit] = []
    for rank in range(want):
        merged.extend(hits[rank] for hits in per_book if rank < len(hits))
    outcome.hits = merged[start:start + count]
    _decorate(outcome, {b.slug: b for b in books}, query, snippet_budget_s, max_snippets)
    return outcome


def _decorate(outcome: SearchOutcome, books: dict[str, BookRef], query: str,
              budget_s: float, max_snippets: int) -> None:
    """Titles always (cheap dirent reads); snippets until the time or count budget runs out."""
    terms = query_terms(query)
    deadline = time.monotonic() + budget_s
    made = 0
    for hit in outcome.hits:
        archive = _handle(books[hit.book]).archive
        try:
            entry = archive.get_entry_by_path(hit.path)
            hit.title = entry.title or hit.path
            if made >= max_snippets or time.monotonic() > deadline:
                outcome.snippets_truncated = True
                continue
            item = entry.get_item()
            if item.mimetype.startswith("text/html"):
                hit.snippet = snippet(bytes(item.content), terms)
                made += 1
        except Exception:  # a dangling result just has no title or snippet
            hit.title = hit.title or hit.path


def suggest(book: BookRef, query: str, count: int) -> list[dict[str, str]]:
    """Up to count title suggestions (paths and titles), skipping blocked paths."""
    handle = _handle(book)
    blocked = matcher(book.block_regex)
    out: list[dict[str, str]] = []
    for path in handle.suggester.suggest(query).getResults(0, count + 20):
        if blocked(path):
            continue
        title = handle.archive.get_entry_by_path(path).title or path
        out.append({"path": path, "title": title})
        if len(out) >= count:
            break
    return out
