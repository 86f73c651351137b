"""Book names derived from ZIM file names the way Kiwix does it."""

import re
import unicodedata
from pathlib import Path

_DATE_SUFFIX = re.compile(r"_\d{4}-\d{2}$")
_UNSAFE = re.compile(r"[^a-z0-9_.\-]")


def strip_diacritics(text: str) -> str:
    """Remove combining marks after NFKD decomposition (é -> e)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def book_slug(path: Path | str) -> str:
    """Kiwix's human-readable id: stem, lowercased, no diacritics, spaces -> _, + -> plus."""
    stem = Path(path).name
    if stem.lower().endswith(".zim"):
        stem = stem[:-4]
    slug = strip_diacritics(stem).lower().replace(" ", "_").replace("+", "plus")
    # Characters that would need escaping in a URL path segment are replaced so that
    # /content/{slug}/ never needs percent-encoding.
    return _UNSAFE.sub("_", slug) or "book"


def undated_alias(slug: str) -> str | None:
    """`wikipedia_en_all_2020-08` -> `wikipedia_en_all` (kiwix-serve's date alias), else None."""
    if _DATE_SUFFIX.search(slug):
        return _DATE_SUFFIX.sub("", slug)
    return None
