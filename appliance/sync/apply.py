"""Turn one outbox record into connector calls, converging on the current local state (order-insensitive)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from appliance.connectors.contract import Connector, PushOutcome, PushResult, UserPush
from appliance.connectors.errors import Rejected
from appliance.db.database import Database
from appliance.db.outbox import OutboxTopic
from appliance.sync.model import Provider

USER_TOPICS = {OutboxTopic.USER_CREATED, OutboxTopic.USER_UPDATED, OutboxTopic.USER_DEACTIVATED}


@dataclass(frozen=True)
class Record:
    """One outbox row as carried on JetStream."""

    outbox_id: int
    topic: str
    aggregate_id: str
    payload: dict[str, Any]

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """Parse the relay's message body."""
        body = json.loads(data)
        return cls(int(body["id"]), str(body["topic"]), str(body["aggregate_id"]), dict(body["payload"]))


def skip(reason: str) -> PushResult:
    """A record this provider has nothing to do with."""
    return PushResult(PushOutcome.SKIPPED, detail=reason)


@dataclass
class Context:
    """What a batch knows up front: current users by uuid, and whether the record was never tried."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    fresh: bool = False  # never attempted before: a create may go first (a conflict is adopted)

    async def user(self, db: Database, uuid: str) -> dict[str, Any] | None:
        """The user's current row (fresher than the queued snapshot)."""
        if uuid not in self.users:
            row = await db.fetchone(
                "SELECT id, uuid, username, first_name, last_name, email, doc_id, facility_id, role, deactivated_at"
                " FROM users WHERE uuid = ?",
                (uuid,),
            )
            if row is None:
                return None
            self.users[uuid] = dict(row)
        return self.users[uuid]


async def apply(
    db: Database, provider: Provider, connector: Connector, record: Record, context: Context | None = None
) -> PushResult:
    """Push one record; raises a classified UpstreamError when upstream did not accept it."""
    ctx = context or Context()
    try:
        topic = OutboxTopic(record.topic)
    except ValueError:
        return skip(f"unknown topic {record.topic}")
    if topic in USER_TOPICS:
        return await _apply_user(db, provider, connector, topic, record.payload, ctx)
    return await _apply_enrollment(db, provider, connector, topic, record.payload, ctx)


def batchable(provider: Provider, record: Record, users: dict[str, dict[str, Any]]) -> UserPush | None:
    """A new learner this provider provisions, fit for the batch path (SIS import)."""
    if record.topic != OutboxTopic.USER_CREATED.value or not provider.push_roster:
        return None
    user = users.get(str(record.payload.get("uuid")))
    if user is None or _out_of_scope(provider, user):
        return None
    return UserPush(user["uuid"], user, bool(user.get("deactivated_at")))


def _out_of_scope(provider: Provider, user: dict[str, Any]) -> str | None:
    if user.get("role") != "learner":
        return "not a learner"
    if provider.facility_id is not None and user.get("facility_id") != provider.facility_id:
        return "other facility"
    return None


async def _apply_user(
    db: Database, provider: Provider, connector: Connector, topic: OutboxTopic, payload: dict[str, Any], ctx: Context
) -> PushResult:
    uuid = str(payload["uuid"])
    user = await ctx.user(db, uuid) or payload
    reason = _out_of_scope(provider, user)
    if reason:
        return skip(reason)
    if not provider.push_roster:
        return skip("push_roster is off")
    deactivated = bool(user.get("deactivated_at"))
    if topic is OutboxTopic.USER_DEACTIVATED:
        return await connector.deactivate_user(uuid)
    fresh = ctx.fresh and topic is OutboxTopic.USER_CREATED
    result = await connector.ensure_user(UserPush(uuid, user, deactivated), create=True, check_first=not fresh)
    if deactivated and result.outcome is not PushOutcome.CREATED:
        await connector.deactivate_user(uuid)
    return result


async def _apply_enrollment(
    db: Database, provider: Provider, connector: Connector, topic: OutboxTopic, payload: dict[str, Any], ctx: Context
) -> PushResult:
    if int(payload.get("provider_id", -1)) != provider.id:
        return skip("course of another provider")
    uuid, course = str(payload["user_uuid"]), str(payload["course_external_id"])
    row = await db.fetchone("SELECT state FROM enrollments WHERE id = ?", (payload.get("enrollment_id"),))
    wanted_active = topic is OutboxTopic.ENROLLMENT_ADDED
    # A later add/drop of the same enrollment supersedes this one: converge on the current state only.
    if row is not None and (row["state"] == "active") != wanted_active:
        return skip("superseded by a later change")
    if not wanted_active:
        return await connector.drop_enrollment(course, uuid)
    user = await ctx.user(db, uuid)
    if user is None:
        raise Rejected(422, {"errors": [{"message": "learner no longer exists locally"}]}, "unknown learner")
    ensured = await connector.ensure_user(
        UserPush(uuid, user, bool(user.get("deactivated_at"))), create=provider.push_roster
    )
    if ensured.outcome is PushOutcome.SKIPPED:
        raise Rejected(
            422,
            {"errors": [{"message": "learner is not provisioned upstream (push_roster off)"}]},
            "learner not provisioned upstream",
        )
    return await connector.ensure_enrollment(course, uuid)
