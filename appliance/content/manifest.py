"""The library feature's declaration: Kiwix ZIM archives served through libzim."""

from appliance.content.settings import ContentSettings
from appliance.core.feature import Feature

FEATURE = Feature(
    name="content",
    order=20,
    sections={"content": ContentSettings},
    setup="appliance.content.feature:setup",
    cli="appliance.content.cli:register",
    description="ZIM libraries: reading, search, suggestions, OPDS, visibility and reading activity",
)
