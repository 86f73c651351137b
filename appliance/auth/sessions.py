"""Server-side sessions: opaque random cookie values stored hashed, with idle and absolute expiry."""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import aiosqlite

from appliance.auth.opaque import hash_secret, new_secret
from appliance.core.clock import Clock, iso
from appliance.core.singleflight import SingleFlight
from appliance.db.database import Database

# last_seen_at is written at most this often per session: idle expiry needs minutes, not milliseconds,
# and a write per request would serialise every worker on SQLite's lock.
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_COOKIE_LENGTH = 200
# A checked session (and the principal built from it) is reused for this long within one process, so
# that a page with thirty assets costs one database read, not thirty. Ending sessions clears this
# process's cache at once; other HTTP processes see the end within this many seconds.
CACHE_TTL_S = 2.0
CACHE_MAX_ENTRIES = 10_000
# SessionById (the content origin's check) re-reads its sessions together this often, off the request path.
REVALIDATE_S = 1.0
REVALIDATE_BATCH = 500  # ids per query (SQLite allows 32,766 variables; smaller keeps each read short)
FORGET_AFTER_S = 120.0  # a session no content request used for this long leaves SessionById's cache


class SessionState(StrEnum):
    """Life of a session (sessions.state)."""

    ACTIVE = "active"
    LOGGED_OUT = "logged_out"
    REVOKED = "revoked"
    ROTATED = "rotated"
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a state name


class AuthMethod(StrEnum):
    """How the session was started (sessions.auth_method)."""

    PASSWORD = "password"  # noqa: S105 - a method name
    LDAP = "ldap"
    SAML = "saml"


@dataclass(frozen=True)
class SessionInfo:
    """A live session and the user columns needed to build the principal."""

    id: int
    csrf_token: str
    auth_method: AuthMethod
    user: dict[str, Any]


_LOOKUP = (
    "SELECT s.id AS sid, s.csrf_token, s.auth_method, s.expires_at, s.last_seen_at,"
    " u.id, u.uuid, u.username, u.role, u.facility_id, u.must_change_password, u.deactivated_at"
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.state = 'active'"
)


class Sessions:
    """The session table, with the clock and lifetimes of the [auth] section."""

    def __init__(self, db: Database, clock: Clock, idle: timedelta, absolute: timedelta) -> None:
        self.db = db
        self.clock = clock
        self.idle = idle
        self.absolute = absolute
        self._cache: dict[str, tuple[float, SessionInfo, Any]] = {}
        # the requests of one browser arriving together after its cache entry expired share one lookup
        self.refills: SingleFlight[tuple[SessionInfo, Any] | None] = SingleFlight()

    def recall(self, token: str) -> tuple[SessionInfo, Any] | None:
        """A session and principal checked less than CACHE_TTL_S ago in this process, or None."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        if self.clock.monotonic() - hit[0] >= CACHE_TTL_S:
            self._cache.pop(token, None)
            return None
        return hit[1], hit[2]

    def remember(self, token: str, info: SessionInfo, principal: Any) -> None:
        """Keep a checked session and its principal for CACHE_TTL_S."""
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[token] = (self.clock.monotonic(), info, principal)

    async def create(
        self, user_id: int, method: AuthMethod, client_addr: str, user_agent: str, *, replaces: str | None = None
    ) -> tuple[str, str, int]:
        """Start a session (ending the one it replaces); return (cookie value, CSRF token, session id)."""
        async with self.db.transaction() as tx:
            return await self.create_tx(tx, user_id, method, client_addr, user_agent, replaces=replaces)

    async def create_tx(
        self,
        tx: aiosqlite.Connection,
        user_id: int,
        method: AuthMethod,
        client_addr: str,
        user_agent: str,
        *,
        replaces: str | None = None,
    ) -> tuple[str, str, int]:
        """create() inside the caller's transaction (sign-in writes session and audit entry together)."""
        token, csrf = new_secret(), new_secret()
        now = self.clock.now()
        if replaces:
            await self._end_where(tx, "token_hash = ?", (hash_secret(replaces),), SessionState.ROTATED, now)
        cur = await tx.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, client_addr, user_agent, auth_method,"
            " created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hash_secret(token),
                user_id,
                csrf,
                client_addr[:100],
                user_agent[:300],
                method.value,
                iso(now),
                iso(now),
                iso(now + self.absolute),
            ),
        )
        assert cur.lastrowid is not None
        return token, csrf, cur.lastrowid

    async def lookup(self, token: str) -> SessionInfo | None:
        """The live session of a cookie value, or None (unknown, ended, expired, or user deactivated)."""
        if not token or len(token) > MAX_COOKIE_LENGTH:
            return None
        row = await self.db.fetchone(_LOOKUP, (hash_secret(token),))
        if row is None:
            return None
        now = self.clock.now()
        last_seen = datetime.fromisoformat(row["last_seen_at"])
        if row["deactivated_at"] is not None:
            await self.end_by_id(row["sid"], SessionState.DEACTIVATED)
            return None
        if now >= datetime.fromisoformat(row["expires_at"]) or now - last_seen >= self.idle:
            await self.end_by_id(row["sid"], SessionState.EXPIRED)
            return None
        if now - last_seen >= TOUCH_INTERVAL:
            await self.db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (iso(now), row["sid"]))
        user = {k: row[k] for k in ("id", "uuid", "username", "role", "facility_id", "must_change_password")}
        return SessionInfo(row["sid"], row["csrf_token"], AuthMethod(row["auth_method"]), user)

    async def end(self, token: str, state: SessionState) -> None:
        """End the session of a cookie value."""
        async with self.db.transaction() as tx:
            await self._end_where(tx, "token_hash = ?", (hash_secret(token),), state, self.clock.now())

    async def end_by_id(self, session_id: int, state: SessionState, user_id: int | None = None) -> int:
        """End one session by id (optionally only if it belongs to user_id); return how many ended."""
        async with self.db.transaction() as tx:
            if user_id is None:
                return await self._end_where(tx, "id = ?", (session_id,), state, self.clock.now())
            return await self._end_where(tx, "id = ? AND user_id = ?", (session_id, user_id), state, self.clock.now())

    async def end_for_user_tx(
        self, tx: aiosqlite.Connection, user_id: int, state: SessionState, *, keep: int | None = None
    ) -> int:
        """End every live session of a user (except keep) inside the caller's transaction."""
        if keep is None:
            return await self._end_where(tx, "user_id = ?", (user_id,), state, self.clock.now())
        return await self._end_where(tx, "user_id = ? AND id != ?", (user_id, keep), state, self.clock.now())

    async def _end_where(
        self, tx: aiosqlite.Connection, where: str, params: tuple[Any, ...], state: SessionState, now: datetime
    ) -> int:
        self._cache.clear()  # ending is rare; forgetting everything is simpler than finding the entries
        cur = await tx.execute(
            f"UPDATE sessions SET state = ?, ended_at = ? WHERE state = 'active' AND {where}",
            (state.value, iso(now), *params),
        )
        return cur.rowcount

    async def list_for_user(self, user_id: int) -> list[dict[str, Any]]:
        """Live sessions of a user, newest first (never the secret)."""
        rows = await self.db.fetchall(
            "SELECT id, created_at, last_seen_at, expires_at, client_addr, user_agent, auth_method FROM sessions"
            " WHERE user_id = ? AND state = 'active' AND expires_at > ? ORDER BY id DESC",
            (user_id, iso(self.clock.now())),
        )
        return [dict(r) for r in rows]

    async def count_active(self) -> int:
        """Sessions that are live now (for the gauge)."""
        now = self.clock.now()
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM sessions WHERE state = 'active' AND expires_at > ? AND last_seen_at > ?",
                (iso(now), iso(now - self.idle)),
            )
            or 0
        )

    async def forget_ended(self, keep: timedelta = timedelta(days=30)) -> int:
        """Delete sessions that ended more than `keep` ago (the audit log keeps the history)."""
        result = await self.db.execute(
            "DELETE FROM sessions WHERE state != 'active' AND ended_at < ?", (iso(self.clock.now() - keep),)
        )
        return result.rowcount

    async def expire_stale(self) -> int:
        """Mark sessions past either expiry as expired (housekeeping; lookups do it lazily too)."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            return await self._end_where(
                tx,
                "(expires_at <= ? OR last_seen_at <= ?)",
                (iso(now), iso(now - self.idle)),
                SessionState.EXPIRED,
                now,
            )


_BY_ID = (
    "SELECT s.id AS sid, s.expires_at, s.last_seen_at,"
    " u.id, u.uuid, u.username, u.role, u.facility_id, u.must_change_password, u.deactivated_at"
    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.state = 'active'"
)
_BY_IDS = _BY_ID.replace("s.id = ?", "s.id IN ({marks})")
_EPOCH = "SELECT n FROM session_epoch WHERE id = 1"


class SessionById:
    """Is session N still live, and whose is it? Answers from memory, checked at most CACHE_TTL_S ago.

    The content origin never sees the session cookie; its own cookie names the session it was issued for,
    and this is how it learns that session ended (sign-out, deactivation, password reset, expiry): within
    CACHE_TTL_S in every process. It only reads; the session's own cookie path touches and ends sessions.

    Reading must not wait for SQLite: `revalidate_loop` re-checks every session used lately each
    REVALIDATE_S (off the request path), so a reader's requests find a fresh answer in memory. Only a
    session seen for the first time, or one not re-checked for CACHE_TTL_S (the loop stalled), is read on
    the request, and sessions unused for FORGET_AFTER_S leave the cache. The re-check reads one row,
    session_epoch (triggers count every change a principal depends on), and re-reads the sessions
    themselves only when it moved, or, one by one, those whose cached times say they have expired.
    """

    def __init__(self, sessions: Sessions, build: Any) -> None:
        self._sessions = sessions
        self._build = build  # (db, user row, session id) -> principal
        self._cache: dict[int, _Checked] = {}
        self._refills: SingleFlight[Any] = SingleFlight()
        self._epoch: int | None = None  # session_epoch when every cached session was last read together

    async def __call__(self, session_id: int) -> Any:
        """The principal of a live session, or None."""
        now = self._sessions.clock.monotonic()
        hit = self._cache.get(session_id)
        if hit is not None and now - hit.checked_at < CACHE_TTL_S:
            hit.used_at = now
            return hit.principal
        found, times = await self._refills.run(str(session_id), lambda: self._load(session_id))
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[session_id] = _Checked(now, found, now, *times)
        return found

    def cached(self, session_id: int) -> tuple[bool, Any]:
        """(known, principal) from memory, without waiting: known is False when a read is due (first use, stale)."""
        hit = self._cache.get(session_id)
        if hit is None:
            return False, None
        now = self._sessions.clock.monotonic()
        if now - hit.checked_at >= CACHE_TTL_S:
            return False, None
        hit.used_at = now
        return True, hit.principal

    async def revalidate(self) -> None:
        """Re-check every cached session used in the last FORGET_AFTER_S; forget the others."""
        sessions = self._sessions
        started = sessions.clock.monotonic()
        live = []
        for sid, entry in list(self._cache.items()):
            if started - entry.used_at > FORGET_AFTER_S:
                del self._cache[sid]
            elif entry.principal is not None:  # an ended session never comes back: nothing to re-check
                live.append(sid)
        # Read before the sessions: a change committed after this read moves it past what is kept below.
        row = await sessions.db.fetchone(_EPOCH)
        epoch = row["n"] if row is not None else None
        if epoch is not None and epoch == self._epoch:
            # Nothing a principal depends on changed since every session was read: only time can have
            # ended one. Those whose cached times say so are read again (a touch may have extended them).
            now = sessions.clock.now()
            due = []
            for sid in live:
                entry = self._cache[sid]
                if entry.expires_at is None or entry.last_seen_at is None or now >= entry.expires_at \
                        or now - entry.last_seen_at >= sessions.idle:
                    due.append(sid)
                elif entry.checked_at < started:
                    entry.checked_at = started
            live = due
        for i in range(0, len(live), REVALIDATE_BATCH):
            chunk = live[i:i + REVALIDATE_BATCH]
            rows = await sessions.db.fetchall(_BY_IDS.format(marks=",".join("?" * len(chunk))), chunk)
            found = {row["sid"]: row for row in rows}
            for sid in chunk:
                principal = await self._principal(found.get(sid))
                entry = self._cache.get(sid)
                if entry is not None and entry.checked_at < started:
                    entry.checked_at, entry.principal = started, principal
                    entry.expires_at, entry.last_seen_at = _times(found.get(sid))
        self._epoch = epoch

    async def revalidate_loop(self) -> None:
        """Run revalidate every REVALIDATE_S (a task of each HTTP process)."""
        while True:
            await asyncio.sleep(REVALIDATE_S)
            await self.revalidate()

    async def _load(self, session_id: int) -> tuple[Any, tuple[datetime | None, datetime | None]]:
        row = await self._sessions.db.fetchone(_BY_ID, (session_id,))
        return await self._principal(row), _times(row)

    async def _principal(self, row: Any) -> Any:
        sessions = self._sessions
        if row is None or row["deactivated_at"] is not None:
            return None
        now = sessions.clock.now()
        if now >= datetime.fromisoformat(row["expires_at"]):
            return None
        if now - datetime.fromisoformat(row["last_seen_at"]) >= sessions.idle:
            return None
        user = {k: row[k] for k in ("id", "uuid", "username", "role", "facility_id", "must_change_password")}
        return await self._build(sessions.db, user, row["sid"])


@dataclass
class _Checked:
    """A session's answer, when it was last read from the database, and when a request last used it."""

    checked_at: float
    principal: Any
    used_at: float
    expires_at: datetime | None = None  # the session's, as last read (None: ended, or not known)
    last_seen_at: datetime | None = None


def _times(row: Any) -> tuple[datetime | None, datetime | None]:
    """A session row's expiry and last use, parsed; (None, None) for no row."""
    if row is None:
        return None, None
    return datetime.fromisoformat(row["expires_at"]), datetime.fromisoformat(row["last_seen_at"])
