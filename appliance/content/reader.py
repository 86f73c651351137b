"""Resolving a request path inside an open archive: item, redirect or nothing."""

import enum
from dataclasses import dataclass

from libzim.reader import Archive, Entry

MAX_REDIRECT_HOPS = 8


class Outcome(enum.Enum):
    """What a path lookup found."""

    ITEM = "item"
    REDIRECT = "redirect"
    MISSING = "missing"


@dataclass(frozen=True)
class Resolved:
    """Result of a lookup: the bytes and headers for an item, or a redirect target."""

    outcome: Outcome
    path: str = ""
    title: str = ""
    mimetype: str = ""
    content: bytes = b""
    index: int = -1


MISSING = Resolved(Outcome.MISSING)


def _entry(archive: Archive, path: str) -> Entry | None:
    """Entry by path; old-namespace archives also answer the bare path under A/."""
    if archive.has_entry_by_path(path):
        return archive.get_entry_by_path(path)
    if not archive.has_new_namespace_scheme and archive.has_entry_by_path("A/" + path):
        return archive.get_entry_by_path("A/" + path)
    return None


def resolve(archive: Archive, path: str) -> Resolved:
    """Look up path (blocking): a redirect entry gives its target path, an item its bytes."""
    entry = _entry(archive, path)
    if entry is None:
        return MISSING
    if entry.is_redirect:
        target = entry
        for _ in range(MAX_REDIRECT_HOPS):
            if not target.is_redirect:
                break
            target = target.get_redirect_entry()
        return Resolved(Outcome.REDIRECT, path=target.path, title=target.title)
    item = entry.get_item()
    return Resolved(Outcome.ITEM, path=item.path, title=item.title, mimetype=item.mimetype,
                    content=bytes(item.content), index=item._index)


def main_path(archive: Archive) -> str | None:
    """The real path of the main page (new archives make main_entry a redirect), or None."""
    if not archive.has_main_entry:
        return None
    try:
        return archive.main_entry.get_item().path
    except Exception:  # a dangling main entry means no main page
        return None


def random_path(archive: Archive, allowed: "callable[[str], bool]", tries: int = 20) -> str | None:  # type: ignore[valid-type]
    """A random front article whose path the caller may see, or None after `tries` attempts."""
    if archive.article_count == 0:
        return None
    for _ in range(tries):
        entry = archive.get_random_entry()
        if entry.is_redirect:
            continue
        if allowed(entry.path):
            return entry.path
    return None


def is_html(mimetype: str) -> bool:
    """Whether the item is a page (counted as an article view)."""
    return mimetype.split(";", 1)[0].strip() in ("text/html", "application/xhtml+xml")
