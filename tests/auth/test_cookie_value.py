"""The session cookie is read straight from the Cookie header; it must agree with a full cookie parser."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from appliance.auth.authn import cookie_value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("appliance_session=abc123", "abc123"),
        ("theme=dark; appliance_session=tok-_.~42; lang=en", "tok-_.~42"),
        ("theme=dark;appliance_session=x", "x"),
        ('appliance_session="quoted-token"', "quoted-token"),
        ("xappliance_session=evil; appliance_session=good", "good"),  # a longer name is another cookie
        ("appliance_session_old=stale", None),
        ("appliance_session=", ""),
        ("appliance_session=first; appliance_session=second", "second"),  # as aiohttp: the last one wins
        ("theme=dark", None),
        ("", None),
        (None, None),
        ("garbage without equals; ;;", None),
    ],
)
def test_cookie_value(header: str | None, expected: str | None) -> None:
    assert cookie_value(header, "appliance_session") == expected


@pytest.mark.parametrize("header", [
    'a=1; appliance_session=Zm9vYmFy-tok; b="two words"',
    "appliance_session=first; appliance_session=second",
    'appliance_session="q"; x=1',
])
def test_agrees_with_aiohttp_request_cookies(header: str) -> None:
    request = make_mocked_request("GET", "/", headers={"Cookie": header})
    assert cookie_value(header, "appliance_session") == request.cookies.get("appliance_session")
