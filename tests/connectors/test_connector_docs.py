"""Every registered connector is documented: a row in the README's "Write a connector" table naming its entry
point, provider types and capabilities exactly as declared."""

import re
from importlib.metadata import entry_points
from pathlib import Path

from appliance.connectors.contract import ConnectorType
from appliance.connectors.registry import CONNECTORS_GROUP

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<types>[^|]*) \| (?P<caps>[^|]*) \| (?P<where>[^|]*) \|\s*$")


def connector_rows() -> dict[str, tuple[set[str], set[str], str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Write a connector")
    section = text[start:text.index("\n### ", start + 1)]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match["name"]] = (set(re.findall(r"`([^`]+)`", match["types"])),
                                   set(re.findall(r"`([^`]+)`", match["caps"])), match["where"].strip())
    return rows


def test_every_registered_connector_has_a_row_matching_its_declaration():
    rows = connector_rows()
    registered = list(entry_points(group=CONNECTORS_GROUP))
    assert registered, "no connector entry point: is the package installed?"
    text = README.read_text(encoding="utf-8")
    for ep in registered:
        declared = ep.load()
        assert isinstance(declared, ConnectorType)
        assert ep.name in rows, f"connector {ep.name} is not documented in the README's 'Write a connector' table"
        types, caps, where = rows[ep.name]
        assert types == set(declared.provider_types), f"{ep.name}: provider types in the README differ"
        assert caps == {c.value for c in declared.capabilities}, f"{ep.name}: capabilities in the README differ"
        heading = where.strip('"')
        assert re.search(rf"^##+ {re.escape(heading)}\s*$", text, re.MULTILINE), (
            f"{ep.name}: the README has no section {heading!r}")


def test_the_table_lists_no_connector_that_is_not_installed():
    installed = {ep.name for ep in entry_points(group=CONNECTORS_GROUP)}
    assert set(connector_rows()) <= installed
