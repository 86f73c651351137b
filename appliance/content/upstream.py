"""Browsing an upstream Kiwix OPDS catalog (library.kiwix.org or another appliance)."""

from dataclasses import asdict, dataclass
from xml.etree import ElementTree as ET

from appliance.content.opds import ATOM, DC, OPENSEARCH

MAX_FEED_BYTES = 8 * 1024 * 1024


class UpstreamError(Exception):
    """The upstream catalog could not be read (unreachable, bad status, not a feed)."""


@dataclass(frozen=True)
class UpstreamBook:
    """One entry of an upstream catalog, with the URL to import it from."""

    id: str
    name: str
    title: str
    summary: str
    language: str
    category: str
    tags: str
    size: int | None
    download_url: str | None
    updated: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def _text(node: ET.Element, tag: str, ns: str = ATOM) -> str:
    """Text of a direct child, '' if absent."""
    child = node.find(f"{{{ns}}}{tag}")
    return (child.text or "").strip() if child is not None else ""


def _download(entry: ET.Element, base: str) -> tuple[str | None, int | None]:
    """The acquisition link: Kiwix points at a .meta4 next to the .zim; we want the .zim itself."""
    for link in entry.findall(f"{{{ATOM}}}link"):
        if link.get("rel", "").startswith("http://opds-spec.org/acquisition"):
            href = link.get("href") or ""
            if href.endswith(".meta4"):
                href = href[: -len(".meta4")]
            if href.startswith("/"):
                href = base.rstrip("/") + href
            length = link.get("length")
            return href or None, int(length) if length and length.isdigit() else None
    return None, None


def parse_feed(data: bytes, base: str) -> tuple[int, list[UpstreamBook]]:
    """Total results and entries of an OPDS acquisition feed; raises UpstreamError if it is not one."""
    try:
        # The catalog is a trusted operator-configured source and expat does not fetch entities.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as exc:
        raise UpstreamError(f"upstream answered with something that is not XML: {exc}") from exc
    if root.tag != f"{{{ATOM}}}feed":
        raise UpstreamError("upstream answered with XML that is not an Atom feed")
    books = []
    for entry in root.findall(f"{{{ATOM}}}entry"):
        url, size = _download(entry, base)
        books.append(UpstreamBook(
            id=_text(entry, "id").removeprefix("urn:uuid:"), name=_text(entry, "name"),
            title=_text(entry, "title"), summary=_text(entry, "summary"), language=_text(entry, "language"),
            category=_text(entry, "category"), tags=_text(entry, "tags"), size=size, download_url=url,
            updated=_text(entry, "updated") or _text(entry, "issued", DC),
        ))
    total_text = _text(root, "totalResults", OPENSEARCH)
    total = int(total_text) if total_text.isdigit() else len(books)
    return total, books
