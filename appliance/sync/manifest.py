"""The sync feature's declaration: the store-and-forward queue to and from the facility's LMS."""

from appliance.core.feature import Feature
from appliance.sync.settings import SyncSettings

FEATURE = Feature(
    name="sync",
    order=40,
    sections={"sync": SyncSettings},
    setup="appliance.sync.feature:setup",
    cli="appliance.sync.cli:register",
    description="LMS providers, outbox pushes, scheduled pulls, uplink monitoring and dead letters",
)
