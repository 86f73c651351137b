"""The helpful links feature's declaration."""

from appliance.core.feature import Feature

FEATURE = Feature(
    name="links",
    order=50,
    setup="appliance.links.feature:setup",
    description="helpful links staff curate for learners, visible per facility, with locally served icons",
)
