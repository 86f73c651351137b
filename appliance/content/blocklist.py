"""Per-library block lists: exact article paths or `*` wildcard patterns, compiled to one regex."""

import re
from dataclasses import dataclass

MAX_PATTERNS = 5000
MAX_PATTERN_LEN = 1024


class BlocklistError(ValueError):
    """A pattern list that cannot be accepted (reason in the message)."""


def normalize_pattern(raw: str) -> str:
    """Trim whitespace and a leading slash; patterns are relative to the book."""
    return raw.strip().lstrip("/")


def validate_patterns(patterns: object) -> list[str]:
    """Check a client-sent list and return it normalised, deduplicated and in order."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise BlocklistError("patterns must be a list of strings")
    if len(patterns) > MAX_PATTERNS:
        raise BlocklistError(f"at most {MAX_PATTERNS} patterns")
    seen: dict[str, None] = {}
    for raw in patterns:
        p = normalize_pattern(raw)
        if not p:
            raise BlocklistError("empty pattern")
        if len(p) > MAX_PATTERN_LEN or "\x00" in p:
            raise BlocklistError(f"pattern too long or contains NUL: {p[:40]!r}")
        seen[p] = None
    return list(seen)


@dataclass(frozen=True)
class Blocklist:
    """Matcher over a library's patterns; `*` matches any run of characters, including `/`."""

    patterns: tuple[str, ...] = ()

    @property
    def regex(self) -> str:
        """One anchored regex for all patterns ('' when empty): also shipped to search processes."""
        return compile_source(self.patterns)

    def blocks(self, path: str) -> bool:
        """Whether path (with or without a leading slash or old `A/` namespace) is blocked."""
        if not self.patterns:
            return False
        return matcher(self.regex)(path)


def compile_source(patterns: tuple[str, ...] | list[str]) -> str:
    """Regex source matching any pattern in full."""
    if not patterns:
        return ""
    parts = [".*".join(re.escape(piece) for piece in p.split("*")) for p in patterns]
    return "^(?:" + "|".join(parts) + ")$"


_CACHE: dict[str, "re.Pattern[str]"] = {}


def matcher(source: str) -> "callable[[str], bool]":  # type: ignore[valid-type]
    """A predicate for a compiled block regex (cached per process); empty source blocks nothing."""
    if not source:
        return lambda _path: False
    rx = _CACHE.get(source)
    if rx is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        rx = _CACHE[source] = re.compile(source, re.DOTALL)

    def blocked(path: str) -> bool:
        p = path.lstrip("/")
        return bool(rx.match(p)) or (p.startswith("A/") and bool(rx.match(p[2:])))

    return blocked
