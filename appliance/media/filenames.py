"""Make client-supplied file names safe to store and show."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)
_DOTS = re.compile(r"\.{2,}")


def sanitize_filename(name: str, *, default: str = "video.mp4", max_len: int = 120) -> str:
    """Return a plain base name: no directories, no `..`, no control or shell characters."""
    name = unicodedata.normalize("NFKC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # drop any directory part, Windows-style too
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name)
    name = _DOTS.sub(".", name).strip(" ._-")
    if not name:
        return default
    if len(name) > max_len:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: max_len - len(ext) - 1] + "." + ext) if dot and len(ext) < 10 else name[:max_len]
    return name


def title_from_filename(name: str) -> str:
    """A human title from an uploaded file name."""
    stem = sanitize_filename(name).rsplit(".", 1)[0]
    return stem.replace("_", " ").strip() or "Untitled video"
