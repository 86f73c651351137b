"""First-start data: the default facility and the instance id (the first admin belongs to the auth feature)."""

from __future__ import annotations

import logging
import uuid

from appliance.db.database import Database

log = logging.getLogger(__name__)
DEFAULT_FACILITY_ID = 1


async def ensure_defaults(db: Database) -> None:
    """Create the default facility and the instance id if this is the first start."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT OR IGNORE INTO facilities (id, name, timezone) VALUES (?, 'Default', 'UTC')",
            (DEFAULT_FACILITY_ID,),
        )
        await tx.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('instance_id', ?)", (str(uuid.uuid4()),))
