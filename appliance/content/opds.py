"""OPDS 1.2 Atom feeds compatible with Kiwix readers (ElementTree, so always well-formed)."""

import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode
from xml.etree import ElementTree as ET

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/terms/"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
OPDS = "https://specs.opds.io/opds-1.2"
THR = "http://purl.org/syndication/thread/1.0"
ACQ_TYPE = "application/atom+xml;profile=opds-catalog;kind=acquisition"
NAV_TYPE = "application/atom+xml;profile=opds-catalog;kind=navigation"
ENTRY_TYPE = "application/atom+xml;type=entry;profile=opds-catalog"
ZIM_TYPE = "application/x-zim"
# A fixed namespace so feed ids are stable across restarts (readers use them for caching).
_FEED_NS = uuidlib.UUID("8b9c3c2e-4e5f-4a4b-9d36-9a1f0c9a7e11")

for _prefix, _uri in (("", ATOM), ("dc", DC), ("opensearch", OPENSEARCH), ("opds", OPDS), ("thr", THR)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class Book:
    """What a feed entry says about one library."""

    uuid: str
    slug: str
    name: str
    title: str
    description: str
    language: str
    creator: str
    publisher: str
    date: str
    tags: str
    category: str
    flavour: str
    article_count: int
    media_count: int
    size: int
    updated: str
    has_illustration: bool
    file_name: str


def _el(parent: ET.Element, tag: str, text: str | None = None, ns: str = ATOM, **attrs: str) -> ET.Element:
    """Append a child element with optional text and attributes."""
    node = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def _feed(feed_id: str, title: str, updated: str, self_href: str, self_type: str) -> ET.Element:
    """The common head of every feed."""
    feed = ET.Element(f"{{{ATOM}}}feed")
    _el(feed, "id", feed_id)
    _el(feed, "link", rel="self", href=self_href, type=self_type)
    _el(feed, "link", rel="start", href="/catalog/v2/root.xml", type=NAV_TYPE)
    _el(feed, "title", title)
    _el(feed, "updated", updated)
    return feed


def _xml(root: ET.Element) -> bytes:
    """Serialise with the XML declaration."""
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def root_feed(updated: str) -> bytes:
    """The navigation root: all entries, partial entries, categories, languages."""
    feed = _feed(str(uuidlib.uuid5(_FEED_NS, "root")), "OPDS Catalog Root", updated,
                 "/catalog/v2/root.xml", NAV_TYPE)
    for key, title, href, kind in (
        ("entries", "All zims", "/catalog/v2/entries", ACQ_TYPE),
        ("partial_entries", "All zims (partial)", "/catalog/v2/partial_entries", ACQ_TYPE),
        ("categories", "List of categories", "/catalog/v2/categories", NAV_TYPE),
        ("languages", "List of languages", "/catalog/v2/languages", NAV_TYPE),
    ):
        entry = _el(feed, "entry")
        _el(entry, "title", title)
        _el(entry, "link", rel="subsection", href=href, type=kind)
        _el(entry, "updated", updated)
        _el(entry, "id", str(uuidlib.uuid5(_FEED_NS, key)))
    _el(feed, "link", rel="search", href="/catalog/v2/searchdescription.xml",
        type="application/opensearchdescription+xml")
    return _xml(feed)


def _book_entry(parent: ET.Element, book: Book, *, partial: bool = False, content_base: str = "") -> ET.Element:
    """One acquisition entry, in the shape libkiwix writes (its page link on the content origin, content_base)."""
    entry = _el(parent, "entry")
    _el(entry, "id", f"urn:uuid:{book.uuid}")
    _el(entry, "title", book.title)
    _el(entry, "updated", book.updated)
    if partial:
        _el(entry, "link", rel="alternate", href=f"/catalog/v2/entry/{book.uuid}", type=ENTRY_TYPE)
        return entry
    _el(entry, "summary", book.description)
    _el(entry, "language", book.language)
    _el(entry, "name", book.name)
    _el(entry, "flavour", book.flavour)
    _el(entry, "category", book.category)
    _el(entry, "tags", book.tags)
    _el(entry, "articleCount", str(book.article_count))
    _el(entry, "mediaCount", str(book.media_count))
    if book.has_illustration:
        _el(entry, "link", rel="http://opds-spec.org/image/thumbnail",
            href=f"/catalog/v2/illustration/{book.uuid}/?size=48",
            type="image/png;width=48;height=48;scale=1")
    _el(entry, "link", type="text/html", href=f"{content_base}/content/{quote(book.slug)}/")
    author = _el(entry, "author")
    _el(author, "name", book.creator)
    publisher = _el(entry, "publisher")
    _el(publisher, "name", book.publisher)
    _el(entry, "issued", book.date, ns=DC)
    _el(entry, "link", rel="http://opds-spec.org/acquisition/open-access", type=ZIM_TYPE,
        href=f"/catalog/v2/download/{book.uuid}/{quote(book.file_name)}", length=str(book.size))
    return entry


def entries_feed(books: list[Book], *, total: int, start: int, count: int, updated: str,
                 query: Mapping[str, str], partial: bool = False, content_base: str = "") -> bytes:
    """A (filtered, paginated) acquisition feed."""
    kind = "partial_entries" if partial else "entries"
    qs = urlencode(sorted(query.items()))
    feed = _feed(str(uuidlib.uuid5(_FEED_NS, f"{kind}?{qs}")), "Filtered Entries" if qs else "All Entries",
                 updated, f"/catalog/v2/{kind}" + (f"?{qs}" if qs else ""), ACQ_TYPE)
    _el(feed, "link", rel="up", href="/catalog/v2/root.xml", type=NAV_TYPE)
    _el(feed, "totalResults", str(total), ns=OPENSEARCH)
    _el(feed, "startIndex", str(start), ns=OPENSEARCH)
    _el(feed, "itemsPerPage", str(count), ns=OPENSEARCH)
    for book in books:
        _book_entry(feed, book, partial=partial, content_base=content_base)
    return _xml(feed)


def single_entry(book: Book, content_base: str = "") -> bytes:
    """One book as a standalone Atom entry document."""
    holder = ET.Element("holder")
    return _xml(_book_entry(holder, book, content_base=content_base))


def facet_feed(kind: str, values: Iterable[tuple[str, int]], updated: str) -> bytes:
    """Navigation feed of languages or categories with their book counts."""
    feed = _feed(str(uuidlib.uuid5(_FEED_NS, kind)), f"List of {kind}", updated,
                 f"/catalog/v2/{kind}", NAV_TYPE)
    param = "lang" if kind == "languages" else "category"
    for value, n in values:
        entry = _el(feed, "entry")
        _el(entry, "title", value)
        if kind == "languages":
            _el(entry, "language", value, ns=DC)
        _el(entry, "count", str(n), ns=THR)
        _el(entry, "link", rel="subsection", href=f"/catalog/v2/entries?{urlencode({param: value})}",
            type=ACQ_TYPE)
        _el(entry, "updated", updated)
        _el(entry, "id", str(uuidlib.uuid5(_FEED_NS, f"{kind}:{value}")))
    return _xml(feed)


def search_description() -> bytes:
    """OpenSearch description of the entries feed."""
    root = ET.Element(f"{{{OPENSEARCH}}}OpenSearchDescription")
    _el(root, "ShortName", "Appliance library", ns=OPENSEARCH)
    _el(root, "Description", "Search the appliance's library catalog", ns=OPENSEARCH)
    _el(root, "Url", ns=OPENSEARCH, type=ACQ_TYPE,
        template="/catalog/v2/entries?q={searchTerms?}&lang={language?}&name={k:name?}"
                 "&tag={k:tag?}&category={k:category?}&start={startIndex?}&count={count?}")
    return _xml(root)


def _matches(book: Book, f: Mapping[str, str]) -> bool:
    """Kiwix filter semantics: lang/category comma = OR, tag `;` = AND, notag `;` = none, q in title/desc."""
    if f.get("lang") and book.language not in {v.strip() for v in f["lang"].split(",")}:
        return False
    if f.get("category") and book.category not in {v.strip() for v in f["category"].split(",")}:
        return False
    if f.get("name") and book.name != f["name"] and book.slug != f["name"]:
        return False
    tags = set(book.tags.split(";"))
    if f.get("tag") and not all(t in tags for t in f["tag"].split(";") if t):
        return False
    if f.get("notag") and any(t in tags for t in f["notag"].split(";") if t):
        return False
    if f.get("maxsize") and f["maxsize"].isdigit() and book.size > int(f["maxsize"]):
        return False
    q = f.get("q", "").strip().lower()
    return not q or all(w in f"{book.title} {book.description}".lower() for w in q.split())


def filter_books(books: Iterable[Book], filters: Mapping[str, str]) -> list[Book]:
    """The books a catalog query selects, in title order."""
    return sorted((b for b in books if _matches(b, filters)), key=lambda b: (b.title.lower(), b.uuid))
