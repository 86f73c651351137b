"""Block-list patterns."""

import pytest

from appliance.content.blocklist import Blocklist, BlocklistError, validate_patterns


def test_exact_and_wildcard() -> None:
    bl = Blocklist(("secret/*", "a/Exact", "*/drugs*"))
    assert bl.blocks("secret/one")
    assert bl.blocks("/secret/deep/two")
    assert bl.blocks("a/Exact")
    assert not bl.blocks("a/Exact2")
    assert not bl.blocks("a/exact")
    assert bl.blocks("x/drugs_and_more")
    assert bl.blocks("A/secret/one")  # old-namespace archives prefix articles with A/
    assert not bl.blocks("a/photosynthesis")
    assert not Blocklist().blocks("anything")


def test_regex_characters_are_literal() -> None:
    bl = Blocklist(("a/q?x&y#z", "b/(x)"))
    assert bl.blocks("a/q?x&y#z")
    assert not bl.blocks("a/qqx&y#z")
    assert bl.blocks("b/(x)")


def test_validate() -> None:
    assert validate_patterns([" /a/b ", "a/b", "c*"]) == ["a/b", "c*"]
    for bad in ("nope", [1], [""], ["a\x00"], ["x" * 2000]):
        with pytest.raises(BlocklistError):
            validate_patterns(bad)
