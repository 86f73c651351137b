"""OPDS feeds: well-formed Atom in Kiwix's shape, filters, and the upstream parser reading them back."""

from xml.etree import ElementTree as ET

import pytest

from appliance.content import opds
from appliance.content.upstream import UpstreamError, parse_feed

A = "{http://www.w3.org/2005/Atom}"


def book(n: int, **kw: object) -> opds.Book:
    base: dict[str, object] = dict(
        uuid=f"00000000-0000-0000-0000-00000000000{n}", slug=f"book{n}", name=f"name{n}", title=f"Title {n}",
        description=f"About <things> & {n}", language="eng", creator="C", publisher="P", date="2026-01-01",
        tags="_category:wikipedia;_ftindex:yes", category="wikipedia", flavour="maxi", article_count=10,
        media_count=2, size=1000 + n, updated="2026-01-01T00:00:00Z", has_illustration=True,
        file_name=f"book {n}.zim")
    base.update(kw)
    return opds.Book(**base)  # type: ignore[arg-type]


def test_entries_feed_shape() -> None:
    xml = opds.entries_feed([book(1), book(2)], total=5, start=0, count=2, updated="2026-01-02T00:00:00Z",
                            query={"lang": "eng"})
    root = ET.fromstring(xml)
    assert root.tag == f"{A}feed"
    assert root.find("{http://a9.com/-/spec/opensearch/1.1/}totalResults").text == "5"
    entries = root.findall(f"{A}entry")
    assert len(entries) == 2
    e = entries[0]
    assert e.find(f"{A}id").text == "urn:uuid:00000000-0000-0000-0000-000000000001"
    assert e.find(f"{A}summary").text == "About <things> & 1"
    links = {link.get("rel") or link.get("type"): link.get("href") for link in e.findall(f"{A}link")}
    assert links["text/html"] == "/content/book1/"
    assert links["http://opds-spec.org/image/thumbnail"].endswith("/?size=48")
    assert links["http://opds-spec.org/acquisition/open-access"].endswith("/book%201.zim")
    for required in ("title", "updated", "id"):
        assert root.find(f"{A}{required}") is not None


def test_upstream_parser_reads_our_feed() -> None:
    xml = opds.entries_feed([book(1)], total=1, start=0, count=10, updated="2026-01-02T00:00:00Z", query={})
    total, books = parse_feed(xml, "http://peer:8080")
    assert total == 1
    assert books[0].id == "00000000-0000-0000-0000-000000000001"
    assert books[0].download_url.startswith("http://peer:8080/catalog/v2/download/")
    assert books[0].size == 1001
    assert books[0].language == "eng"


def test_upstream_parser_strips_meta4() -> None:
    xml = (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>urn:uuid:x</id><title>T</title>'
           b'<link rel="http://opds-spec.org/acquisition/open-access" type="application/x-zim" '
           b'href="https://download.kiwix.org/zim/w.zim.meta4" length="12"/></entry></feed>')
    _, books = parse_feed(xml, "https://library.kiwix.org")
    assert books[0].download_url == "https://download.kiwix.org/zim/w.zim"


@pytest.mark.parametrize("bad", [b"<html>nope", b"<rss/>", b""])
def test_upstream_parser_rejects_non_feeds(bad: bytes) -> None:
    with pytest.raises(UpstreamError):
        parse_feed(bad, "http://x")


def test_filters() -> None:
    books = [book(1, language="fra", tags="a;b"), book(2, category="other"), book(3, title="Zebra facts")]
    assert [b.slug for b in opds.filter_books(books, {"lang": "fra,deu"})] == ["book1"]
    assert [b.slug for b in opds.filter_books(books, {"category": "other"})] == ["book2"]
    assert [b.slug for b in opds.filter_books(books, {"tag": "a;b"})] == ["book1"]
    assert [b.slug for b in opds.filter_books(books, {"notag": "b"})] == ["book2", "book3"]
    assert [b.slug for b in opds.filter_books(books, {"q": "zebra"})] == ["book3"]
    assert [b.slug for b in opds.filter_books(books, {"name": "name2"})] == ["book2"]


def test_navigation_feeds_are_atom() -> None:
    for xml in (opds.root_feed("2026-01-01T00:00:00Z"),
                opds.facet_feed("languages", [("eng", 2), ("fra", 1)], "2026-01-01T00:00:00Z"),
                opds.facet_feed("categories", [("wikipedia", 3)], "2026-01-01T00:00:00Z")):
        assert ET.fromstring(xml).tag == f"{A}feed"
    ET.fromstring(opds.single_entry(book(1)))
    ET.fromstring(opds.search_description())
