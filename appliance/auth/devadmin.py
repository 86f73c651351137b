"""The first admin account of a --dev start: created once, its one-time password printed to the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable

from appliance.auth.accounts import NewUser, insert_user_tx
from appliance.auth.audit import Actor
from appliance.auth.passwords import generate_password, hash_password
from appliance.bootstrap import DEFAULT_FACILITY_ID
from appliance.core.blocking import run_blocking
from appliance.core.clock import Clock
from appliance.db.database import Database

DEV_ADMIN = "admin"


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


def announcer(password: str) -> Callable[[str], None]:
    """A start-up notice printing the one-time password to the terminal (never to the log)."""

    def announce(url: str) -> None:
        print(
            f"\n  First admin account created.\n  URL:      {url}\n  Username: {DEV_ADMIN}\n"
            f"  Password: {password}   (one-time: you must change it at first sign-in)\n",
            file=sys.stdout,
            flush=True,
        )

    return announce
