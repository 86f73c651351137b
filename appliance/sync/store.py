"""Database access of the sync engine: providers, the delivery ledger, dead letters, runtime state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from appliance.db.database import Database
from appliance.db.events import EventType, add_event
from appliance.sync.model import Provider, ProviderState, RuntimeState, Uplink
from appliance.sync.secrets import Vault

PROVIDER_COLUMNS = (
    "id, type, name, base_url, account_id, facility_id, state, push_roster, runtime_state, uplink, "
    "retry_until, last_error, outbox_floor, last_pull_at, last_push_at, created_at, updated_at"
)


def provider_view(row: sqlite3.Row) -> dict[str, Any]:
    """A provider row as the API shows it (credentials are never included)."""
    return {
        "id": row["id"],
        "type": row["type"],
        "name": row["name"],
        "base_url": row["base_url"],
        "account_id": row["account_id"],
        "facility_id": row["facility_id"],
        "state": row["state"],
        "push_roster": bool(row["push_roster"]),
        "runtime_state": row["runtime_state"],
        "uplink": row["uplink"],
        "last_error": row["last_error"],
        "last_pull_at": row["last_pull_at"],
        "last_push_at": row["last_push_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


async def provider_row(db: Database, provider_id: int) -> sqlite3.Row | None:
    """One provider row (without credentials)."""
    return await db.fetchone(f"SELECT {PROVIDER_COLUMNS} FROM providers WHERE id = ?", (provider_id,))


async def load_provider(db: Database, vault: Vault, provider_id: int) -> Provider | None:
    """A provider with decrypted credentials, for the engine."""
    row = await db.fetchone(
        "SELECT id, type, name, base_url, account_id, credentials, facility_id, state, push_roster,"
        " outbox_floor, created_at FROM providers WHERE id = ?",
        (provider_id,),
    )
    if row is None:
        return None
    return Provider(
        id=row["id"],
        type=row["type"],
        name=row["name"],
        base_url=row["base_url"],
        account_id=row["account_id"],
        credentials=vault.open(row["credentials"]),
        facility_id=row["facility_id"],
        state=ProviderState(row["state"]),
        push_roster=bool(row["push_roster"]),
        outbox_floor=row["outbox_floor"],
        created_at=row["created_at"],
    )


async def enabled_provider_ids(db: Database) -> list[int]:
    """Providers the engine should run."""
    rows = await db.fetchall("SELECT id FROM providers WHERE state = 'enabled' ORDER BY id")
    return [r["id"] for r in rows]


async def set_runtime(
    db: Database,
    provider_id: int,
    *,
    runtime: RuntimeState | None = None,
    uplink: Uplink | None = None,
    error: str | None = None,
    clear_error: bool = False,
    retry_until: str | None = None,
) -> None:
    """Record what the engine found, for the status API and other processes."""
    sets: list[str] = ["updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"]
    params: list[str | None] = []
    if runtime is not None:
        sets.append("runtime_state = ?")
        params.append(runtime.value)
        sets.append("retry_until = ?")
        params.append(retry_until)
    if uplink is not None:
        sets.append("uplink = ?")
        params.append(uplink.value)
    if error is not None or clear_error:
        sets.append("last_error = ?")
        params.append(error)
    async with db.transaction() as tx:
        before = None
        if runtime is RuntimeState.AUTH_FAILED:
            cur = await tx.execute("SELECT name, runtime_state FROM providers WHERE id = ?", (provider_id,))
            before = await cur.fetchone()
        await tx.execute(f"UPDATE providers SET {', '.join(sets)} WHERE id = ?", (*params, provider_id))
        if before is not None and before["runtime_state"] != RuntimeState.AUTH_FAILED.value:
            await add_event(tx, EventType.PROVIDER_AUTH_FAILED,
                            {"provider": {"id": provider_id, "name": before["name"]}, "error": error})


async def queue_depth(db: Database, provider_id: int, floor: int) -> tuple[int, str | None]:
    """Outbox rows newer than the provider not yet dealt with, and the creation time of the oldest."""
    row = await db.fetchone(
        "SELECT COUNT(*) AS n, MIN(o.created_at) AS oldest FROM outbox o WHERE o.id > ? AND NOT EXISTS"
        " (SELECT 1 FROM push_deliveries d WHERE d.outbox_id = o.id AND d.provider_id = ? AND d.state != 'sending')",
        (floor, provider_id),
    )
    assert row is not None
    return int(row["n"]), row["oldest"]


async def ledger_states(db: Database, provider_id: int, outbox_ids: list[int]) -> dict[int, str]:
    """The ledger state (sending, done, skipped, dead) of those outbox rows that have one."""
    if not outbox_ids:
        return {}
    marks = ",".join("?" * len(outbox_ids))
    rows = await db.fetchall(
        f"SELECT outbox_id, state FROM push_deliveries WHERE provider_id = ? AND outbox_id IN ({marks})",
        (provider_id, *outbox_ids),
    )
    return {r["outbox_id"]: r["state"] for r in rows}


async def users_by_uuid(db: Database, uuids: set[str]) -> dict[str, dict[str, Any]]:
    """Current rows of these users, payload-shaped (one query per batch instead of one per record)."""
    if not uuids:
        return {}
    marks = ",".join("?" * len(uuids))
    rows = await db.fetchall(
        "SELECT id, uuid, username, first_name, last_name, email, doc_id, facility_id, role, deactivated_at"
        f" FROM users WHERE uuid IN ({marks})", tuple(uuids))
    return {r["uuid"]: dict(r) for r in rows}


def dumps(value: Any) -> str:
    """Compact JSON for TEXT columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class CredentialsReplaced(Exception):
    """The stored credentials are no longer the ones being rotated (an admin replaced them meanwhile)."""


async def save_sealed_credentials(db: Database, provider_id: int, sealed: str, expected: str | None = None) -> None:
    """Replace a provider's sealed credentials in one transaction (a rotated OAuth refresh token).

    The row holds either the old or the new object, never neither: SQLite commits the UPDATE atomically,
    and the connector uses a rotated token only after this returns. With `expected`, the row changes only
    if it still holds those sealed credentials, so a rotation never overwrites credentials an admin
    stored in the meantime. The caller seals first, so it knows the value before it lands.
    """
    sql = "UPDATE providers SET credentials = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?"
    params: tuple[str | int, ...] = (sealed, provider_id)
    if expected is not None:
        sql += " AND credentials = ?"
        params = (*params, expected)
    async with db.transaction() as tx:
        cur = await tx.execute(sql, params)
        if expected is not None and cur.rowcount == 0:
            raise CredentialsReplaced(f"provider {provider_id}: credentials were replaced; not storing the rotation")
