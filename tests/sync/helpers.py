"""Helpers of the sync tests: a header authenticator, learners written with their outbox row, waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.auth.usernames import username_key
from appliance.db.outbox import OutboxTopic, add_outbox
from appliance.keys import AUTHENTICATORS, DB
from appliance.web.policy import AuthVia, Principal, Role

TEST_USER_HEADER = "X-Test-User"


def install_header_auth(client: TestClient) -> None:
    """Let tests act as a user by id through a header (identity's sessions are tested elsewhere)."""

    async def authenticate(request: web.Request) -> Principal | None:
        raw = request.headers.get(TEST_USER_HEADER)
        if not raw:
            return None
        db = request.app[DB]
        row = await db.fetchone("SELECT id, uuid, username, role, facility_id FROM users WHERE id = ?", (int(raw),))
        if row is None:
            return None
        extra = await db.fetchall("SELECT facility_id FROM user_facilities WHERE user_id = ?", (row["id"],))
        return Principal(
            user_id=row["id"],
            uuid=row["uuid"],
            username=row["username"],
            role=Role(row["role"]),
            facility_id=row["facility_id"],
            facility_ids=frozenset({row["facility_id"], *(r[0] for r in extra)}),
            via=AuthVia.TOKEN,
        )

    client.app[AUTHENTICATORS].append(authenticate)


def as_user(user: dict[str, Any]) -> dict[str, str]:
    """Headers acting as this user."""
    return {TEST_USER_HEADER: str(user["id"])}


async def create_learner(client: TestClient, *, facility_id: int = 1, role: str = "learner", **fields: Any) -> dict:
    """Insert a user and its `roster.user.created` outbox row in one transaction, as identity does."""
    name = fields.pop("username", None) or f"learner{uuid.uuid4().hex[:10]}"
    user = {
        "uuid": str(uuid.uuid4()),
        "username": name,
        "first_name": fields.get("first_name", "Ada"),
        "last_name": fields.get("last_name", "Learner"),
        "email": fields.get("email"),
        "doc_id": fields.get("doc_id"),
        "facility_id": facility_id,
        "role": role,
        "deactivated_at": None,
    }
    async with client.app[DB].transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO users (uuid, username, username_key, first_name, last_name, email, doc_id, facility_id, role)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user["uuid"],
                name,
                username_key(name),
                user["first_name"],
                user["last_name"],
                user["email"],
                user["doc_id"],
                facility_id,
                role,
            ),
        )
        user["id"] = cur.lastrowid
        await add_outbox(tx, OutboxTopic.USER_CREATED, user["uuid"], {k: v for k, v in user.items() if k != "id"})
    return user


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll until predicate() is true."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if isinstance(result, Awaitable):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
