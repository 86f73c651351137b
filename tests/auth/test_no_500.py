"""Every identity endpoint answers odd JSON values with a 4xx envelope, never a 500."""

from collections.abc import Callable
from typing import Any

import pytest

from appliance.keys import DB
from tests.auth.helpers import Browser
from tests.conftest import AppClientFactory, MakeUser

Browsers = Callable[..., Browser]
ODD: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 5000, "\x00", "\ud800", [], [1, "a"], {}, {"a": {"b": 1}}]
FIELDS = [
    "username",
    "password",
    "role",
    "facility_id",
    "first_name",
    "last_name",
    "email",
    "doc_id",
    "extra_facility_ids",
    "active",
    "name",
    "timezone",
    "user_id",
    "expires_in_days",
    "current_password",
    "new_password",
]


@pytest.mark.slow
async def test_odd_values_never_crash(
    app_client: AppClientFactory, config_factory: Any, make_user: MakeUser, browsers: Browsers
) -> None:
    unlimited = {
        "api_burst": 10**6,
        "api_address_burst": 10**6,
        "login_burst": 10**6,
        "login_user_burst": 10**6,
        "lockout_threshold": 10**6,
        "lockout_address_threshold": 10**6,
    }
    client = await app_client(config_factory(auth=unlimited))
    admin = await make_user(client, role="system_admin")
    learner = await make_user(client)
    b = browsers(client)
    await b.login(admin["username"], admin["password"])
    token = (await b.call("POST", "/api/v1/tokens", json={"name": "fuzz", "role": "system_admin"}, expect=201))["data"][
        "token"
    ]
    auth = {"Authorization": f"Bearer {token}"}
    # Each endpoint gets a valid base body with one field replaced at a time.
    targets: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/users", {"username": "fuzzed", "role": "learner"}),
        ("PATCH", f"/api/v1/users/{learner['id']}", {"first_name": "F"}),
        ("POST", "/api/v1/facilities", {"name": "Fuzz", "timezone": "UTC"}),
        ("POST", "/api/v1/tokens", {"name": "n", "role": "learner"}),
        ("POST", "/api/v1/auth/password", {"current_password": "x-wrong-1", "new_password": "n3w pass word"}),
        ("POST", "/api/v1/auth/login", {"username": learner["username"], "password": "x-wrong-1"}),
    ]
    crashes = []
    statuses: set[int] = set()
    for method, path, base in targets:
        for field in FIELDS:
            for value in ODD:
                body = {**base, field: value}
                async with client.request(method, path, json=body, headers=auth) as resp:
                    statuses.add(resp.status)
                    if resp.status >= 500 or resp.content_type != "application/json":
                        crashes.append(f"{method} {path} {field}={value!r:.40}: {resp.status}")
                    if resp.status == 201 and path == "/api/v1/users":
                        uid = (await resp.json())["data"]["user"]["id"]
                        async with client.delete(f"/api/v1/users/{uid}", headers=auth):
                            pass
                        await client.app[DB].execute("DELETE FROM outbox")
                        await client.app[DB].execute(
                            "UPDATE users SET username = username || id, username_key = username_key || id"
                            " WHERE id = ?",
                            (uid,),
                        )
    assert not crashes, "\n".join(crashes)
    assert 429 not in statuses  # the limits were lifted: every request reached its handler
    assert {400, 200, 201} <= statuses
