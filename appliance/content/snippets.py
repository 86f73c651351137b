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


WINDOW_BYTES = 3000


def _window(data: bytes, terms: list[str]) -> bytes:
    """Bytes around the first term found in the body: only that window is parsed, not a 500 KB page."""
    body = data.find(b"<body")
    start = body if body >= 0 else 0
    lower = data[start:MAX_HTML_BYTES].lower()
    for term in terms:
        pos = lower.find(term.encode("utf-8"))
        if pos >= 0:
            pos += start
            lo = max(start, pos - WINDOW_BYTES // 2)
            chunk = data[lo:pos + WINDOW_BYTES // 2]
            # Drop a tag cut in half at either edge so no markup leaks into the text.
            if lo > start and b">" in chunk[:200]:
                chunk = chunk[chunk.index(b">") + 1:]
            cut = chunk.rfind(b"<")
            return chunk[:cut] if cut > chunk.rfind(b">") else chunk
    return data[start:start + WINDOW_BYTES]


def snippet(data: bytes, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """A window of text centred on the first query term found, or the page's opening."""
    text = html_text(_window(data, terms))
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
