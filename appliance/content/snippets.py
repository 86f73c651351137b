"""Plain-text snippets around the query terms, built from an article's HTML under a byte budget."""

import html
import re

SNIPPET_CHARS = 220
MAX_HTML_BYTES = 256 * 1024
_DROP = re.compile(r"<(script|style|head|noscript)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.U)


def query_terms(query: str, limit: int = 8) -> list[str]:
    """Distinct lower-cased words of a query, longest first (the best anchors for a snippet)."""
    words = {w.lower() for w in _WORD.findall(query) if len(w) > 1}
    return sorted(words, key=lambda w: (-len(w), w))[:limit]


def html_text(data: bytes) -> str:
    """Visible text of an HTML page (first MAX_HTML_BYTES only: snippets need the top of the page)."""
    text = data[:MAX_HTML_BYTES].decode("utf-8", "replace")
    text = _DROP.sub(" ", text)
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", html.unescape(text)).strip()


def snippet(data: bytes, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A window of text centred on the first query term found, or the page's opening."""
    text = html_text(data)
    lower = text.lower()
    pos = -1
    for term in terms:
        pos = lower.find(term)
        if pos >= 0:
            break
    if pos < 0:
        return _clip(text[:width], cut_start=False, cut_end=len(text) > width)
    start = max(0, pos - width // 3)
    end = min(len(text), start + width)
    return _clip(text[start:end], cut_start=start > 0, cut_end=end < len(text))


def _clip(window: str, *, cut_start: bool, cut_end: bool) -> str:
    """Trim partial words at cut edges and mark them with an ellipsis."""
    if cut_start and " " in window:
        window = "…" + window.split(" ", 1)[1]
    if cut_end and " " in window:
        window = window.rsplit(" ", 1)[0] + "…"
    return window.strip()
