"""Opening ZIM archives and reading their metadata into a library description."""

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from libzim.reader import Archive

from appliance.content.names import book_slug

ZIM_MAGIC = b"ZIM\x04"
ILLUSTRATION_SIZE = 48


class LibraryState(enum.Enum):
    """Lifecycle of a library row."""

    READY = "ready"
    ERROR = "error"
    MISSING = "missing"


@dataclass(frozen=True)
class ArchiveInfo:
    """Everything the library table stores about one ZIM file."""

    path: str
    slug: str
    size: int
    mtime_ns: int
    state: LibraryState
    error: str | None = None
    uuid: str | None = None
    name: str = ""
    title: str = ""
    description: str = ""
    language: str = ""
    creator: str = ""
    publisher: str = ""
    date: str = ""
    tags: str = ""
    category: str = ""
    flavour: str = ""
    article_count: int = 0
    media_count: int = 0
    has_fulltext_index: bool = False
    has_main_page: bool = False
    illustration: bytes | None = field(default=None, repr=False)


def _meta(archive: Archive, key: str) -> str:
    """One metadata value as text, or '' when absent or undecodable."""
    if key not in archive.metadata_keys:
        return ""
    return bytes(archive.get_metadata(key)).decode("utf-8", "replace").strip()


def category_from_tags(tags: str) -> str:
    """The `_category:x` tag, as Kiwix's OPDS reports it."""
    for tag in tags.split(";"):
        if tag.startswith("_category:"):
            return tag.split(":", 1)[1]
    return ""


def error_info(path: Path, slug: str, size: int, mtime_ns: int, reason: str) -> ArchiveInfo:
    """A library in state error with its reason; a stable pseudo-uuid keeps the row unique."""
    return ArchiveInfo(
        path=str(path), slug=slug, size=size, mtime_ns=mtime_ns, state=LibraryState.ERROR,
        error=reason[:500],
        uuid="error-" + hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest(),
        name=slug, title=path.name,
    )


def open_archive(path: Path) -> Archive:
    """Open a ZIM after a cheap magic check (libzim's message for a text file is obscure)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != ZIM_MAGIC:
        raise ValueError("not a ZIM file (bad magic number)" if head else "empty file")
    return Archive(path)


def inspect_archive(path: Path) -> ArchiveInfo:
    """Read one file's metadata (blocking); failures become an ArchiveInfo in state error."""
    slug = book_slug(path)
    try:
        st = path.stat()
    except OSError as exc:
        return error_info(path, slug, 0, 0, f"cannot stat: {exc.strerror}")
    try:
        archive = open_archive(path)
        info = _describe(archive, path, slug, st.st_size, st.st_mtime_ns)
    except Exception as exc:  # libzim raises RuntimeError and friends for corrupt files
        return error_info(path, slug, st.st_size, st.st_mtime_ns, f"{type(exc).__name__}: {exc}")
    return info


def _describe(archive: Archive, path: Path, slug: str, size: int, mtime_ns: int) -> ArchiveInfo:
    """Metadata of an archive that opened."""
    tags = _meta(archive, "Tags")
    illustration = None
    if archive.has_illustration(ILLUSTRATION_SIZE):
        illustration = bytes(archive.get_illustration_item(ILLUSTRATION_SIZE).content)
    has_main = False
    if archive.has_main_entry:
        try:
            archive.main_entry.get_item()
            has_main = True
        except Exception:  # a main entry pointing at nothing is treated as absent
            has_main = False
    return ArchiveInfo(
        path=str(path), slug=slug, size=size, mtime_ns=mtime_ns, state=LibraryState.READY,
        uuid=str(archive.uuid), name=_meta(archive, "Name") or slug,
        title=_meta(archive, "Title") or slug, description=_meta(archive, "Description"),
        language=_meta(archive, "Language"), creator=_meta(archive, "Creator"),
        publisher=_meta(archive, "Publisher"), date=_meta(archive, "Date"), tags=tags,
        category=category_from_tags(tags), flavour=_meta(archive, "Flavour"),
        article_count=archive.article_count, media_count=archive.media_count,
        has_fulltext_index=archive.has_fulltext_index, has_main_page=has_main, illustration=illustration,
    )


def scan_directory(root: Path) -> list[Path]:
    """All *.zim files under root (recursively), sorted; temporary downloads are skipped."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.zim") if p.is_file() and not p.name.startswith("."))
