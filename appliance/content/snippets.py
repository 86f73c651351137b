"""Plain-text snippets around the query terms, built from an article's HTML under a byte budget."""

import html
import re

SNIPPET_CHARS = 220
MAX_HTML_BYTES = 256 * 1024
_DROP = re.compile(r"<(script|style|head|noscript)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_TAG_BYTES = re.compile(rb"<[^>]+>")
_WORD = re.compile(r"\w+", re.U)


def query_terms(query: str, limit: int = 8) -> list[str]:
    """Distinct lower-cased words of a query, longest first (the best anchors for a snippet)."""
    words = {w.lower() for w in _WORD.findall(query) if len(w) > 1}
    return sorted(words, key=lambda w: (-len(w), w))[:limit]


def html_text(data: bytes) -> str:
    """Visible text of an HTML page (first MAX_HTML_BYTES only: snippets need the top of the page)."""
    data = data[:MAX_HTML_BYTES]
    # The case-insensitive pattern tries every position; most windows hold none of these tags at all.
    lower = data.lower()
    if b"<script" in lower or b"<style" in lower or b"<head" in lower or b"<noscript" in lower:
        text = _DROP.sub(" ", data.decode("utf-8", "replace"))
        text = _TAG.sub(" ", text)
    else:
        # Tags are ASCII and UTF-8 never puts an ASCII byte inside a character: stripping them from the
        # bytes is the same as from the text, at a byte a character.
        text = _TAG_BYTES.sub(b" ", data).decode("utf-8", "replace")
    if "&" in text:
        text = html.unescape(text)
    # str.split and the pattern \s agree on what whitespace is; splitting is the faster of the two.
    return " ".join(text.split())


WINDOW_BYTES = 3000


FIRST_SCAN_BYTES = 16 * 1024


def _first_term(data: bytes, start: int, terms: list[str]) -> int:
    """Where the first term (in the given order) first occurs after start, or -1.

    The first 16 KB are lowered first, the rest of the page only when the best term is not there: it is
    usually near the top, and lowering whole 200 KB pages for every result was a large part of a search's
    time. A term is only given up on once the whole page has been looked at, so the answer is the same as
    a full scan's.
    """
    wanted = [t.encode("utf-8") for t in terms]
    end = min(len(data), MAX_HTML_BYTES)
    size = FIRST_SCAN_BYTES
    while wanted:
        stop = min(end, start + size)
        lower = data[start:stop].lower()
        pos = lower.find(wanted[0])
        if pos >= 0:
            return start + pos
        if stop >= end:
            wanted.pop(0)  # not in the page: the next term, in the text already lowered
            for term in wanted:
                pos = lower.find(term)
                if pos >= 0:
                    return start + pos
            return -1
        size = end - start  # not near the top: the whole page
    return -1


def _window(data: bytes, terms: list[str]) -> bytes:
    """Bytes around the first term found in the body: only that window is parsed, not a 500 KB page."""
    body = data.find(b"<body")
    start = body if body >= 0 else 0
    if terms:
        pos = _first_term(data, start, terms)
        if pos >= 0:
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
