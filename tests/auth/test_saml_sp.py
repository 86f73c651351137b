"""SAML SP checks against a real pysaml2 IdP: valid, unsigned, wrongly signed, expired, replayed, wrong audience."""

from dataclasses import replace

import aiohttp
import pytest

from appliance.auth.saml import SamlError, SamlRefusal, SamlServiceProvider
from appliance.auth.settings import SamlSettings
from tests.auth.saml_idp import IdpMode, LocalIdp, form_fields

ALICE = {
    "uid": ["alice"],
    "givenName": ["Alice"],
    "sn": ["Archer"],
    "mail": ["alice@facility.test"],
    "employeeNumber": ["A1001"],
    "role": ["student"],
    "facility": ["unit-b"],
}


def sp_for(idp: LocalIdp, **over: object) -> SamlServiceProvider:
    """An SP trusting the test IdP (the IdP learns the SP's metadata first)."""
    base = SamlSettings(
        enabled=True,
        base_url="https://appliance.test",
        role_map={"student": "learner", "teacher": "facility_admin"},
        facility_map={"unit-b": "2"},
    )
    metadata = idp.configure(SamlServiceProvider(base).metadata_xml())
    return SamlServiceProvider(replace(base, idp_metadata_file=str(metadata), **over))  # type: ignore[arg-type]


async def sign_in(sp: SamlServiceProvider, idp: LocalIdp) -> tuple[str, str]:
    """Follow the redirect to the IdP like a browser; return (request id, posted SAMLResponse)."""
    request_id, location = sp.login_redirect("/after")
    assert location.startswith(idp.base_url + "/sso/redirect?SAMLRequest=")
    async with aiohttp.ClientSession() as http, http.get(location) as resp:
        action, fields = form_fields(await resp.text())
    assert action == "https://appliance.test/saml/acs"
    assert fields["RelayState"] == "/after"
    return request_id, fields["SAMLResponse"]


async def test_valid_assertion_maps_profile(saml_idp: LocalIdp) -> None:
    sp = sp_for(saml_idp)
    saml_idp.user = ALICE
    request_id, response = await sign_in(sp, saml_idp)
    result = sp.parse_response(response, {request_id: "/after"})
    p = result.profile
    assert (p.username, p.first_name, p.last_name, p.email, p.doc_id) == (
        "alice",
        "Alice",
        "Archer",
        "alice@facility.test",
        "A1001",
    )
    assert (p.role, p.facility_ids) == ("learner", (2,))
    assert result.in_response_to == request_id
    assert result.assertion_id


async def test_replayed_response_is_unsolicited(saml_idp: LocalIdp) -> None:
    sp = sp_for(saml_idp)
    saml_idp.user = ALICE
    request_id, response = await sign_in(sp, saml_idp)
    sp.parse_response(response, {request_id: "/after"})
    # The request id is spent once used; the same response again has nothing to answer.
    with pytest.raises(SamlError) as err:
        sp.parse_response(response, {})
    assert err.value.reason is SamlRefusal.UNSOLICITED


@pytest.mark.parametrize("mode", [IdpMode.UNSIGNED, IdpMode.WRONG_KEY, IdpMode.EXPIRED, IdpMode.WRONG_AUDIENCE])
async def test_bad_assertions_refused(saml_idp: LocalIdp, mode: IdpMode) -> None:
    sp = sp_for(saml_idp)
    saml_idp.user = ALICE
    saml_idp.mode = mode
    request_id, response = await sign_in(sp, saml_idp)
    with pytest.raises(SamlError) as err:
        sp.parse_response(response, {request_id: "/after"})
    assert err.value.reason is SamlRefusal.INVALID


async def test_tampered_attribute_breaks_signature(saml_idp: LocalIdp) -> None:
    import base64

    sp = sp_for(saml_idp)
    saml_idp.user = ALICE
    request_id, response = await sign_in(sp, saml_idp)
    xml = base64.b64decode(response).decode()
    assert ">student<" in xml
    forged = base64.b64encode(xml.replace(">student<", ">teacher<").encode()).decode()
    with pytest.raises(SamlError):
        sp.parse_response(forged, {request_id: "/after"})


async def test_unmapped_role_refused_unless_default(saml_idp: LocalIdp) -> None:
    sp = sp_for(saml_idp)
    saml_idp.user = {**ALICE, "role": ["janitor"]}
    request_id, response = await sign_in(sp, saml_idp)
    with pytest.raises(SamlError) as err:
        sp.parse_response(response, {request_id: "/after"})
    assert err.value.reason is SamlRefusal.NO_ROLE


async def test_garbage_response_refused(saml_idp: LocalIdp) -> None:
    sp = sp_for(saml_idp)
    for junk in ["", "not base64!", "PHhtbD48L3htbD4="]:
        with pytest.raises(SamlError):
            sp.parse_response(junk, {})


def test_metadata_names_acs(saml_idp: LocalIdp) -> None:
    xml = sp_for(saml_idp).metadata_xml()
    assert "https://appliance.test/saml/acs" in xml
    assert 'entityID="https://appliance.test/saml/metadata"' in xml
