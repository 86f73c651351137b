"""Helpers of the Kolibri tests: a provider pointed at a Kolibri, runs waited for, queues drained."""

from __future__ import annotations

import json
from typing import Any

from appliance.keys import DB
from tests.realkolibri import RealKolibri
from tests.sync.helpers import as_user, wait_until


async def add_kolibri(client, admin_user, base_url: str, credentials: dict[str, str], **fields: Any) -> dict:
    """POST /api/v1/providers for a Kolibri."""
    body = {"type": "kolibri", "name": fields.pop("name", "Kolibri"), "base_url": base_url,
            "credentials": credentials, **fields}
    resp = await client.post("/api/v1/providers", json=body, headers=as_user(admin_user))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]


async def add_real_kolibri(client, admin_user, kolibri: RealKolibri, **fields: Any) -> dict:
    """A provider for the real Kolibri, signing in to its facility."""
    return await add_kolibri(client, admin_user, kolibri.base_url,
                             {**kolibri.credentials, "facility": kolibri.facility_id}, **fields)


async def run(client, admin_user, provider: dict, job: str = "pull", timeout: float = 120) -> dict:
    """Queue a run now and wait until it finished; returns its row (state, stage, counts, errors)."""
    resp = await client.post(f"/api/v1/providers/{provider['id']}/sync", json={"job": job},
                             headers=as_user(admin_user))
    assert resp.status == 202, await resp.text()
    run_id = (await resp.json())["data"]["run_id"]
    db = client.app[DB]

    async def finished() -> bool:
        state = await db.fetchval("SELECT state FROM sync_runs WHERE id = ?", (run_id,))
        return state in ("succeeded", "failed")

    await wait_until(finished, timeout=timeout, interval=0.2, message=f"{job} run {run_id}")
    row = dict(await db.fetchone("SELECT state, stage, counts, errors FROM sync_runs WHERE id = ?", (run_id,)))
    row["counts"], row["errors"] = json.loads(row["counts"]), json.loads(row["errors"])
    return row


async def queue_empty(client, admin_user) -> bool:
    """Every provider's queue drained and the outbox fully relayed."""
    status = await (await client.get("/api/v1/sync/status", headers=as_user(admin_user))).json()
    return all(p["queue_depth"] == 0 for p in status["data"]) and status["meta"]["unpublished_outbox"] == 0
