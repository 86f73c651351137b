"""SAML sign-in through the full app with a real pysaml2 IdP: redirect, ACS, replay, bad assertions."""

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appliance.auth.saml import SamlServiceProvider
from appliance.auth.settings import SamlSettings
from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.auth.saml_idp import IdpMode, LocalIdp, form_fields
from tests.conftest import AppClientFactory, MakeFacility, MakeUser

Browsers = Callable[..., Browser]
BASE = "https://appliance.test"
ALICE = {
    "uid": ["alice"],
    "givenName": ["Alice"],
    "sn": ["Archer"],
    "mail": ["alice@facility.test"],
    "employeeNumber": ["A1001"],
    "role": ["student"],
    "facility": ["unit-b"],
}


async def saml_app(
    app_client: AppClientFactory, config_factory: Any, make_facility: MakeFacility, idp: LocalIdp
) -> TestClient:
    """The app as an SP of the test IdP (which learns the SP's metadata first)."""
    metadata = idp.configure(SamlServiceProvider(SamlSettings(enabled=True, base_url=BASE)).metadata_xml())
    client = await app_client(
        config_factory(
            saml={
                "enabled": True,
                "base_url": BASE,
                "idp_metadata_file": str(metadata),
                "role_map": {"student": "learner", "teacher": "facility_admin"},
                "facility_map": {"unit-b": "2"},
            }
        )
    )
    assert await make_facility(client, "Unit B") == 2
    return client


async def via_idp(b: Browser, idp: LocalIdp, next_path: str = "/library") -> dict[str, str]:
    """GET /saml/login, follow the redirect to the IdP, return the auto-post form's fields."""
    async with b.http.get(b.base + f"/saml/login?next={next_path}", allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(idp.base_url)
    async with b.http.get(location) as resp:
        action, fields = form_fields(await resp.text())
    assert action == BASE + "/saml/acs"
    return fields


async def post_acs(b: Browser, idp: LocalIdp, fields: dict[str, str]) -> tuple[int, str, dict[str, Any]]:
    """POST the form to the ACS as the browser would (cross-site, from the IdP's page)."""
    async with b.http.post(
        b.base + "/saml/acs", data=fields, allow_redirects=False, headers={"Origin": idp.base_url}
    ) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, resp.headers.get("Location", ""), body


async def test_valid_assertion_signs_in_and_cannot_be_replayed(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    saml_idp.user = ALICE
    b = browsers(client)
    fields = await via_idp(b, saml_idp, "/library")
    status, location, _ = await post_acs(b, saml_idp, fields)
    assert (status, location) == (303, "/library")
    me = (await b.call("GET", "/api/v1/auth/me"))["data"]
    assert (me["username"], me["auth_source"], me["role"], me["facility_id"]) == ("alice", "saml", "learner", 2)
    thief = browsers(client)
    status, _, body = await post_acs(thief, saml_idp, fields)
    assert status == 403
    assert body["error"]["code"] == "saml_refused"
    await thief.call("GET", "/api/v1/auth/me", expect=401)
    db = client.app[DB]
    assert await db.fetchval("SELECT count(*) FROM sessions") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE topic = 'roster.user.created'") == 1


@pytest.mark.parametrize("mode", [IdpMode.UNSIGNED, IdpMode.WRONG_KEY, IdpMode.EXPIRED, IdpMode.WRONG_AUDIENCE])
async def test_bad_assertions_are_refused(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
    mode: IdpMode,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    saml_idp.user = ALICE
    saml_idp.mode = mode
    b = browsers(client)
    status, _, body = await post_acs(b, saml_idp, await via_idp(b, saml_idp))
    assert status == 403
    assert body["error"]["code"] == "saml_refused"
    db = client.app[DB]
    assert await db.fetchval("SELECT count(*) FROM users") == 0
    assert await db.fetchval("SELECT count(*) FROM sessions") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'sign_in_failed'") == 1


async def test_unsolicited_and_garbage_posts(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    b = browsers(client)
    for data in [{}, {"SAMLResponse": "%%%not-base64"}, {"SAMLResponse": "PHg+PC94Pg=="}]:
        status, _, body = await post_acs(b, saml_idp, data)
        assert status in (400, 403)
        assert body["error"]["code"] in ("invalid_saml", "saml_refused")
    assert await client.app[DB].fetchval("SELECT count(*) FROM users") == 0


async def test_idp_cannot_take_over_a_local_account(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    make_user: MakeUser,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    await make_user(client, username="alice", role="system_admin")
    saml_idp.user = ALICE
    b = browsers(client)
    status, _, body = await post_acs(b, saml_idp, await via_idp(b, saml_idp))
    assert status == 403
    await b.call("GET", "/api/v1/auth/me", expect=401)


async def test_metadata_and_open_redirect(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    async with client.get("/saml/metadata") as resp:
        assert resp.status == 200
        assert BASE + "/saml/acs" in await resp.text()
    saml_idp.user = ALICE
    b = browsers(client)
    status, location, _ = await post_acs(b, saml_idp, await via_idp(b, saml_idp, "//evil.example/x"))
    assert (status, location) == (303, "/")


async def test_saml_disabled_is_404(client: TestClient) -> None:
    for path in ("/saml/metadata", "/saml/login"):
        async with client.get(path, allow_redirects=False) as resp:
            assert resp.status == 404


async def test_response_must_return_to_the_browser_that_asked(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    client = await saml_app(app_client, config_factory, make_facility, saml_idp)
    saml_idp.user = ALICE
    attacker, victim = browsers(client), browsers(client)
    fields = await via_idp(attacker, saml_idp)  # the attacker's own, valid, unused answer
    await via_idp(victim, saml_idp)  # the victim started a sign-in of their own: they hold a binding cookie
    status, _, body = await post_acs(victim, saml_idp, fields)
    assert status == 403
    assert "another browser" in body["error"]["message"]
    await victim.call("GET", "/api/v1/auth/me", expect=401)
    status, _, _ = await post_acs(attacker, saml_idp, fields)  # still usable by the browser that asked
    assert status == 303


async def test_binding_cookie_is_required_behind_tls(
    app_client: AppClientFactory,
    config_factory: Any,
    make_facility: MakeFacility,
    saml_idp: LocalIdp,
    browsers: Browsers,
) -> None:
    metadata = saml_idp.configure(SamlServiceProvider(SamlSettings(enabled=True, base_url=BASE)).metadata_xml())
    client = await app_client(
        config_factory(
            http={"secure_cookies": True},
            saml={
                "enabled": True,
                "base_url": BASE,
                "idp_metadata_file": str(metadata),
                "role_map": {"student": "learner"},
            },
        )
    )
    saml_idp.user = ALICE
    owner, stranger = browsers(client, secure_origin=True), browsers(client, secure_origin=True)
    async with owner.http.get(owner.base + "/saml/login", allow_redirects=False) as resp:
        cookie = resp.headers["Set-Cookie"]
        assert "SameSite=None" in cookie
        assert "Secure" in cookie
        location = resp.headers["Location"]
    async with owner.http.get(location) as resp:
        _, fields = form_fields(await resp.text())
    status, _, _ = await post_acs(stranger, saml_idp, fields)  # no binding cookie at all
    assert status == 403
    status, _, _ = await post_acs(owner, saml_idp, fields)
    assert status == 303
