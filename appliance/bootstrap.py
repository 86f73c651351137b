"""First-start data: the default facility, the instance id, and in --dev the first admin account."""

from __future__ import annotations

import logging
import sys
import uuid

from appliance.auth.accounts import NewUser, insert_user_tx
from appliance.auth.audit import Actor
from appliance.auth.passwords import generate_password, hash_password
from appliance.core.blocking import run_blocking
from appliance.core.clock import Clock
from appliance.db.database import Database

log = logging.getLogger(__name__)
DEFAULT_FACILITY_ID = 1
DEV_ADMIN = "admin"


async def ensure_defaults(db: Database) -> None:
    """Create the default facility and the instance id if this is the first start."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT OR IGNORE INTO facilities (id, name, timezone) VALUES (?, 'Default', 'UTC')",
            (DEFAULT_FACILITY_ID,),
        )
        await tx.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('instance_id', ?)", (str(uuid.uuid4()),))


async def ensure_dev_admin(db: Database) -> str | None:
    """In --dev, create one system admin with a random one-time password; return it (printed once)."""
    if await db.fetchval("SELECT 1 FROM users WHERE role = 'system_admin' LIMIT 1"):
        return None
    password = generate_password()
    hashed = await run_blocking("auth", hash_password, password)
    async with db.transaction() as tx:
        # Re-checked inside the write lock: two processes starting together must not both create one.
        cur = await tx.execute("SELECT 1 FROM users WHERE role = 'system_admin' LIMIT 1")
        if await cur.fetchone():
            return None
        # Through the identity feature's own insert, so the account creation is audited like any other.
        new = NewUser(username=DEV_ADMIN, role="system_admin", facility_id=DEFAULT_FACILITY_ID, first_name="Dev",
                      last_name="Admin", password_hash=hashed, must_change_password=True)
        await insert_user_tx(tx, Clock().iso_now(), new, Actor.system("serve --dev"))
    return password


def announce_dev_admin(password: str, url: str) -> None:
    """Print the one-time password to the terminal (never to the log)."""
    print(
        f"\n  First admin account created.\n  URL:      {url}\n  Username: {DEV_ADMIN}\n"
        f"  Password: {password}   (one-time: you must change it at first sign-in)\n",
        file=sys.stdout,
        flush=True,
    )
