"""Lockout after repeated failed sign-ins, per username key and per client address."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from appliance.core.clock import iso
from appliance.db.database import Database
from appliance.db.events import EventType, add_event


class LockKind(StrEnum):
    """What a failure counter or lock is about."""

    USERNAME = "username"
    ADDRESS = "address"


@dataclass(frozen=True)
class LockoutPolicy:
    """threshold failures (per kind) within window lock the subject for duration."""

    username_threshold: int
    address_threshold: int
    window: timedelta
    duration: timedelta

    def threshold(self, kind: LockKind) -> int:
        """The failure count that locks a subject of this kind."""
        return self.username_threshold if kind is LockKind.USERNAME else self.address_threshold


class Lockouts:
    """Failure counting and locks stored in SQLite, so every worker process sees the same state."""

    def __init__(self, db: Database, policy: LockoutPolicy) -> None:
        self.db = db
        self.policy = policy

    async def locked_for(self, subjects: dict[LockKind, str], now: datetime) -> int:
        """Seconds until every lock on these subjects ends (0 when none is locked)."""
        longest = 0
        for kind, subject in subjects.items():
            until = await self.db.fetchval(
                "SELECT locked_until FROM lockouts WHERE kind = ? AND subject = ? AND locked_until > ?",
                (kind.value, subject, iso(now)),
            )
            if until:
                left = (datetime.fromisoformat(until) - now).total_seconds()
                longest = max(longest, int(left) + 1)
        return longest

    async def record_failure(self, subjects: dict[LockKind, str], now: datetime) -> list[LockKind]:
        """Count a failed sign-in; return the kinds that became locked because of it."""
        newly: list[LockKind] = []
        since = iso(now - self.policy.window)
        async with self.db.transaction() as tx:
            for kind, subject in subjects.items():
                await tx.execute(
                    "INSERT INTO login_failures (kind, subject, at) VALUES (?, ?, ?)", (kind.value, subject, iso(now))
                )
                cur = await tx.execute(
                    "SELECT count(*) FROM login_failures WHERE kind = ? AND subject = ? AND at > ?",
                    (kind.value, subject, since),
                )
                row = await cur.fetchone()
                count = row[0] if row else 0
                if count >= self.policy.threshold(kind):
                    cur = await tx.execute(
                        "SELECT 1 FROM lockouts WHERE kind = ? AND subject = ? AND locked_until > ?",
                        (kind.value, subject, iso(now)),
                    )
                    if await cur.fetchone() is None:
                        newly.append(kind)
                        await add_event(tx, EventType.LOGIN_LOCKED, {
                            "kind": kind.value, "subject": subject, "failures": count,
                            "locked_until": iso(now + self.policy.duration),
                        })
                    await tx.execute(
                        "INSERT INTO lockouts (kind, subject, locked_until) VALUES (?, ?, ?) ON CONFLICT"
                        " (kind, subject) DO UPDATE SET locked_until = excluded.locked_until",
                        (kind.value, subject, iso(now + self.policy.duration)),
                    )
                    # Start counting afresh once locked, so the lock does not renew itself forever.
                    await tx.execute("DELETE FROM login_failures WHERE kind = ? AND subject = ?", (kind.value, subject))
        return newly

    async def clear(self, kind: LockKind, subject: str) -> None:
        """Forget failures and any lock of one subject (successful sign-in, admin reset)."""
        # Read first: almost every sign-in has nothing to clear, and a read costs no write lock.
        found = await self.db.fetchval(
            "SELECT 1 FROM login_failures WHERE kind = ? AND subject = ?"
            " UNION ALL SELECT 1 FROM lockouts WHERE kind = ? AND subject = ? LIMIT 1",
            (kind.value, subject, kind.value, subject),
        )
        if not found:
            return
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM login_failures WHERE kind = ? AND subject = ?", (kind.value, subject))
            await tx.execute("DELETE FROM lockouts WHERE kind = ? AND subject = ?", (kind.value, subject))

    async def prune(self, now: datetime) -> None:
        """Drop failures older than the window and locks that ended (periodic housekeeping)."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM login_failures WHERE at <= ?", (iso(now - self.policy.window),))
            await tx.execute("DELETE FROM lockouts WHERE locked_until <= ?", (iso(now),))
