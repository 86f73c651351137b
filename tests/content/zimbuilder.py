"""Builds small ZIM archives with libzim's writer for the content tests."""

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from libzim.writer import Creator, Hint, Item, StringProvider

_VOCAB = ("photosynthesis chlorophyll light energy plant leaf sugar oxygen water carbon algebra equation "
          "variable geometry triangle circle history empire river mountain")
WORDS = tuple(_VOCAB.split())


class _Item(Item):
    """One entry for the writer."""

    def __init__(self, path: str, title: str, mimetype: str, content: bytes | str, front: bool):
        super().__init__()
        self._path, self._title, self._mime, self._front = path, title, mimetype, front
        self._content = content

    def get_path(self) -> str:
        return self._path

    def get_title(self) -> str:
        return self._title

    def get_mimetype(self) -> str:
        return self._mime

    def get_contentprovider(self) -> StringProvider:
        return StringProvider(self._content)

    def get_hints(self) -> dict:
        return {Hint.FRONT_ARTICLE: self._front, Hint.COMPRESS: self._mime.startswith("text/")}


def png(size: int, rgb: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    """A solid size x size PNG, made by hand so the tests need no imaging library."""
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def article(title: str, body: str, filler: int = 250) -> str:
    """An HTML page whose body is long enough to be worth compressing."""
    text = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(filler))
    return (f"<html><head><title>{title}</title><style>p{{margin:0}}</style></head><body>"
            f"<h1>{title}</h1><p>{body}</p><p>{text}</p><script>var x=1;</script></body></html>")


@dataclass
class ZimSpec:
    """What to put in a test archive."""

    name: str = "testbook"
    title: str = "Test Book"
    language: str = "eng"
    index: bool = True
    main: str | None = "home"
    illustration: bool = True
    articles: dict[str, tuple[str, str]] = field(default_factory=dict)
    binaries: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    tags: str = "_category:test;_ftindex:yes"
    empty: bool = False


def default_spec(**overrides: object) -> ZimSpec:
    """The standard test book: articles with awkward paths, a redirect, binaries, an image."""
    spec = ZimSpec(**overrides)  # type: ignore[arg-type]
    if not spec.articles and not spec.empty:
        spec.articles = {
            "home": ("Home", "Welcome to the test book. See <a href='a/photosynthesis'>photosynthesis</a>."),
            "a/photosynthesis": ("Photosynthesis", "Plants turn light into sugar by photosynthesis."),
            "a/algebra": ("Algebra", "An equation relates a variable to numbers."),
            "a/q?x&y#z": ("Odd Path", "A path with question mark, ampersand and hash."),
            "a/with space": ("With Space", "A path containing a space."),
            "a/café": ("Café", "Non-ASCII path."),
            "secret/one": ("Secret One", "Blocked photosynthesis content."),
            "secret/two": ("Secret Two", "Also blocked."),
        }
        for i in range(30):
            body = f"Filler article {i} about photosynthesis and water."
            spec.articles[f"a/filler{i}"] = (f"Filler {i}", body)
        spec.binaries = {
            "img/logo.png": ("image/png", png(16)),
            "video/clip.webm": ("video/webm", bytes(range(256)) * 400),
        }
        spec.redirects = {"a/Photo": "a/photosynthesis"}
    return spec


def build_zim(path: Path, spec: ZimSpec | None = None) -> Path:
    """Write the archive described by spec to path and return path."""
    spec = spec or default_spec()
    creator = Creator(str(path))
    if spec.index:
        creator.config_indexing(True, spec.language)
    with creator as c:
        if spec.main and not spec.empty:
            c.set_mainpath(spec.main)
        for key, value in (("Title", spec.title), ("Language", spec.language), ("Name", spec.name),
                           ("Date", "2026-01-01"), ("Creator", "Tests"), ("Publisher", "Tests"),
                           ("Description", f"{spec.title} for tests"), ("Tags", spec.tags)):
            c.add_metadata(key, value)
        if spec.illustration:
            c.add_illustration(48, png(48))
        if spec.empty:
            return path
        for apath, (title, body) in spec.articles.items():
            c.add_item(_Item(apath, title, "text/html", article(title, body), True))
        for bpath, (mime, data) in spec.binaries.items():
            c.add_item(_Item(bpath, "", mime, data, False))
        for src, target in spec.redirects.items():
            c.add_redirection(src, src, target, {Hint.FRONT_ARTICLE: False})
    return path


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """A copy of src cut short: a corrupt archive."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
