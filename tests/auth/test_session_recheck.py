"""SessionById's re-check: one row a second while nothing changed, yet every way a session ends still reaches it."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.auth.sessions import REVALIDATE_S, SessionById
from appliance.core.clock import FakeClock, iso
from appliance.db import Database
from appliance.keys import DB, SESSION_PRINCIPAL
from tests.auth.helpers import Browser
from tests.conftest import AppClientFactory, MakeFacility, MakeUser

Browsers = Callable[..., Browser]


class Reads:
    """The statements that read session rows (the epoch read is not one of them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sessions: list[str] = []
        self.epoch = 0
        for name in ("fetchall", "fetchone"):
            monkeypatch.setattr(Database, name, self._spy(getattr(Database, name)))

    def _spy(self, real: Any) -> Any:
        async def call(db: Database, sql: str, *args: Any, **kwargs: Any) -> Any:
            if "FROM session_epoch" in sql:
                self.epoch += 1
            elif "FROM sessions s JOIN users u" in sql:
                self.sessions.append(sql)
            return await real(db, sql, *args, **kwargs)
        return call


async def recheck(by_id: SessionById) -> None:
    """What the process's loop does every REVALIDATE_S: time passes, then the re-check."""
    clock = by_id._sessions.clock  # noqa: SLF001
    assert isinstance(clock, FakeClock)
    clock.advance(REVALIDATE_S)
    await by_id.revalidate()


async def _signed_in(client: TestClient, make_user: MakeUser, browsers: Browsers,
                     **user: Any) -> tuple[dict[str, Any], Browser, int, SessionById]:
    made = await make_user(client, **user)
    browser = browsers(client)
    await browser.login(made["username"], made["password"])
    sid = await client.app[DB].fetchval("SELECT id FROM sessions WHERE user_id = ?", (made["id"],))
    by_id = client.app[SESSION_PRINCIPAL]
    assert isinstance(by_id, SessionById)
    assert await by_id(sid) is not None
    await recheck(by_id)  # the first re-check reads every session (the epoch was not known)
    return made, browser, sid, by_id


@pytest.fixture
async def client(app_client: AppClientFactory, config_factory) -> TestClient:  # type: ignore[no-untyped-def]
    clock = FakeClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    return await app_client(config_factory(auth={"session_idle_minutes": 30, "session_absolute_hours": 8}),
                            clock=clock)


async def test_nothing_changed_reads_no_session(client: TestClient, make_user: MakeUser, browsers: Browsers,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, sid, by_id = await _signed_in(client, make_user, browsers)
    reads = Reads(monkeypatch)
    for _ in range(5):
        await recheck(by_id)
    assert reads.epoch >= 5
    assert reads.sessions == []
    assert by_id.cached(sid)[1] is not None


@pytest.mark.parametrize("change", [
    "UPDATE sessions SET state = 'logged_out' WHERE id = :sid",
    "UPDATE users SET deactivated_at = :now WHERE id = :uid",
    "DELETE FROM users WHERE id = :uid",
    "UPDATE sessions SET expires_at = :now WHERE id = :sid",
])
async def test_a_change_written_elsewhere_ends_the_session(client: TestClient, make_user: MakeUser,
                                                           browsers: Browsers, change: str) -> None:
    """Written straight to the database, as another process would: the next re-check sees it."""
    made, _, sid, by_id = await _signed_in(client, make_user, browsers)
    now = iso(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    await client.app[DB].execute(change, {"sid": sid, "uid": made["id"], "now": now})
    await recheck(by_id)
    assert by_id.cached(sid) == (True, None)


async def test_role_and_facilities_reach_the_principal(client: TestClient, make_user: MakeUser,
                                                       browsers: Browsers, make_facility: MakeFacility) -> None:
    made, _, sid, by_id = await _signed_in(client, make_user, browsers, role="department_admin")
    other = await make_facility(client)
    db = client.app[DB]
    await db.execute("INSERT INTO user_facilities (user_id, facility_id) VALUES (?, ?)", (made["id"], other))
    await recheck(by_id)
    assert other in by_id.cached(sid)[1].facility_ids
    await db.execute("UPDATE users SET role = 'learner' WHERE id = ?", (made["id"],))
    await recheck(by_id)
    assert by_id.cached(sid)[1].role.value == "learner"


async def read_for(by_id: SessionById, sid: int, seconds: int) -> None:
    """A reader using the session every second while the process's loop re-checks it."""
    for _ in range(seconds):
        by_id.cached(sid)
        await recheck(by_id)


async def test_idle_expiry_by_time_alone(client: TestClient, make_user: MakeUser, browsers: Browsers,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No row changes when a session goes idle: the cached times say it is due, and it is read again."""
    _, _, sid, by_id = await _signed_in(client, make_user, browsers)
    reads = Reads(monkeypatch)
    await read_for(by_id, sid, 29 * 60)
    assert reads.sessions == []  # never due while the session's times hold
    assert by_id.cached(sid)[1] is not None
    await read_for(by_id, sid, 2 * 60)
    assert 1 <= len(reads.sessions) <= 2  # read again once (by the test's re-check, or the loop's)
    assert by_id.cached(sid)[1] is None
    assert await by_id(sid) is None


async def test_a_touch_elsewhere_keeps_the_session(client: TestClient, make_user: MakeUser, browsers: Browsers,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """last_seen_at moves without the epoch: a session whose old times say idle is read again, and lives."""
    _, browser, sid, by_id = await _signed_in(client, make_user, browsers)
    await read_for(by_id, sid, 20 * 60)
    await browser.call("GET", "/api/v1/auth/me")  # the app origin touches the session (last_seen_at)
    reads = Reads(monkeypatch)
    await read_for(by_id, sid, 15 * 60)  # 35 minutes after the times first read, 15 after the touch
    assert 1 <= len(reads.sessions) <= 2
    assert by_id.cached(sid)[1] is not None
