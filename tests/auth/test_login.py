"""Sign-in, sessions, sign-out and password change through the full app."""

from aiohttp.test_utils import TestClient

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import MakeUser


async def test_login_me_logout(client: TestClient, make_user: MakeUser, browsers) -> None:  # type: ignore[no-untyped-def]
    user = await make_user(client, role="learner")
    b: Browser = browsers(client)
    body = await b.login(user["username"], user["password"])
    assert body["data"]["user"]["username"] == user["username"]
    assert "password_hash" not in body["data"]["user"]
    me = await b.call("GET", "/api/v1/auth/me")
    assert me["data"]["role"] == "learner"
    assert me["data"]["csrf_token"] == b.csrf
    stored = await client.app[DB].fetchval("SELECT token_hash FROM sessions")
    assert stored != b.session_cookie() and len(stored) == 64
    await b.call("POST", "/api/v1/auth/logout")
    await b.call("GET", "/api/v1/auth/me", expect=401)
