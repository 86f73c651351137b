"""The OPDS catalog over HTTP: Kiwix shape, visibility, illustration, .zim download with Range."""

from xml.etree import ElementTree as ET

from appliance.keys import DB
from tests.content.conftest import Library

A = "{http://www.w3.org/2005/Atom}"


async def test_catalog_lists_only_visible(library: Library) -> None:
    c = library.client
    learner = await library.user()
    await library.show("testbook")
    resp = await c.get("/catalog/v2/entries", headers=learner)
    assert resp.headers["Content-Type"].startswith("application/atom+xml;profile=opds-catalog;kind=acquisition")
    feed = ET.fromstring(await resp.read())
    assert [e.find(f"{A}name").text for e in feed.findall(f"{A}entry")] == ["testbook"]
    assert ET.fromstring(await (await c.get("/catalog/v2/entries")).read()).findall(f"{A}entry") == []
    admin = await library.user(role="system_admin")
    everything = ET.fromstring(await (await c.get("/catalog/v2/entries?count=-1", headers=admin)).read())
    assert len(everything.findall(f"{A}entry")) == 3
    only = ET.fromstring(await (await c.get("/catalog/v2/entries?name=wikipedia_en_ray_charles",
                                            headers=admin)).read())
    assert [e.find(f"{A}title").text for e in only.findall(f"{A}entry")] == ["Ray Charles"]
    total = ET.fromstring(await (await c.get("/catalog/v2/entries?count=0", headers=admin)).read())
    assert total.find("{http://a9.com/-/spec/opensearch/1.1/}totalResults").text == "3"
    assert (await c.get("/catalog/v2/entries?count=abc", headers=admin)).status == 400
    langs = ET.fromstring(await (await c.get("/catalog/v2/languages", headers=admin)).read())
    assert [e.find(f"{A}title").text for e in langs.findall(f"{A}entry")] == ["eng"]
    ET.fromstring(await (await c.get("/catalog/v2/root.xml", headers=admin)).read())
    ET.fromstring(await (await c.get("/catalog/v2/categories", headers=admin)).read())


async def test_entry_illustration_and_download(library: Library) -> None:
    c = library.client
    await library.show("testbook")
    learner = await library.user()
    uuid = await c.app[DB].fetchval("SELECT uuid FROM libraries WHERE slug = 'testbook'")
    entry = ET.fromstring(await (await c.get(f"/catalog/v2/entry/{uuid}", headers=learner)).read())
    links = {link.get("rel"): link.get("href") for link in entry.findall(f"{A}link")}
    icon = await c.get(links["http://opds-spec.org/image/thumbnail"], headers=learner)
    assert icon.content_type == "image/png"
    assert (await icon.read()).startswith(b"\x89PNG")
    assert (await c.get(f"/catalog/v2/illustration/{uuid}?size=96", headers=learner)).status == 404
    href = links["http://opds-spec.org/acquisition/open-access"]
    whole = await (await c.get(href, headers=learner)).read()
    assert whole[:4] == b"ZIM\x04"
    part = await c.get(href, headers={**learner, "Range": "bytes=4-99"})
    assert part.status == 206
    assert await part.read() == whole[4:100]
    hidden = await c.app[DB].fetchval("SELECT uuid FROM libraries WHERE slug = 'zimfile'")
    assert (await c.get(f"/catalog/v2/entry/{hidden}", headers=learner)).status == 404
    assert (await c.get(f"/catalog/v2/download/{hidden}/zimfile.zim", headers=learner)).status == 404
