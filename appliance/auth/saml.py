"""SAML 2.0 service provider (pysaml2 + xmlsec1): metadata, AuthnRequest redirect, checked assertions.

Methods of `SamlServiceProvider` block (xmlsec1 runs as a subprocess): call them through
`run_blocking("saml", ...)`. Replay and outstanding-request state live in the database so that any
HTTP worker can receive the ACS post.
"""

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning

from appliance.auth.external import ExternalProfile, ExternalSource, map_facilities, map_role
from appliance.auth.settings import SamlSettings

log = logging.getLogger(__name__)

# The SAML 2.0 URNs we use, spelled out so that pysaml2 (about 1.5 s to import: it builds XML schemas)
# is imported only when SAML is switched on.
BINDING_HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
NAMEID_FORMAT_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

ACS_PATH = "/saml/acs"
METADATA_PATH = "/saml/metadata"
LOGIN_PATH = "/saml/login"


class SamlRefusal(StrEnum):
    """Why an assertion was refused (bounded: used as a metric label and audit detail)."""

    INVALID = "invalid"
    UNSOLICITED = "unsolicited"
    NO_ROLE = "no_role"
    NO_USERNAME = "no_username"


class SamlError(Exception):
    """The IdP's answer is not accepted; `reason` says why in a bounded word."""

    def __init__(self, reason: SamlRefusal, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SamlAssertion:
    """A checked assertion: who, and the id/expiry the replay cache needs."""

    profile: ExternalProfile
    assertion_id: str
    in_response_to: str | None
    not_on_or_after: str


class SamlServiceProvider:
    """This appliance as a SAML service provider of one IdP."""

    def __init__(self, settings: SamlSettings) -> None:
        self.settings = settings
        base = settings.base_url.rstrip("/")
        self.acs_url = base + ACS_PATH
        self.entity_id = settings.sp_entity_id or base + METADATA_PATH
        conf: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": settings.xmlsec_binary,
            "accepted_time_diff": settings.clock_skew_seconds,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)]},
                    # The assertion itself must be signed: a signed envelope around an unsigned,
                    # swappable assertion is the classic wrapping attack.
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "allow_unsolicited": False,
                    "authn_requests_signed": bool(settings.sp_key_file),
                    "name_id_format": NAMEID_FORMAT_UNSPECIFIED,
                }
            },
        }
        if settings.idp_metadata_file:
            conf["metadata"] = {"local": [settings.idp_metadata_file]}
        if settings.sp_key_file and settings.sp_cert_file:
            conf["key_file"] = settings.sp_key_file
            conf["cert_file"] = settings.sp_cert_file
        from saml2.config import SPConfig

        with warnings.catch_warnings():
            # pysaml2 7.5 names the CFB cipher mode where cryptography deprecated it; harmless, and not ours.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            from saml2.client import Saml2Client

        self._config = SPConfig()
        self._config.load(conf)
        self._client = Saml2Client(config=self._config)

    def metadata_xml(self) -> str:
        """The SP metadata document an IdP administrator imports (blocking)."""
        from saml2.metadata import create_metadata_string

        xml = create_metadata_string(None, config=self._config, valid=24 * 365)
        return xml.decode() if isinstance(xml, bytes) else str(xml)

    def login_redirect(self, relay_state: str) -> tuple[str, str]:
        """Create an AuthnRequest; return (request id, IdP URL to redirect the browser to) (blocking)."""
        request_id, info = self._client.prepare_for_authenticate(relay_state=relay_state, binding=BINDING_HTTP_REDIRECT)
        location = dict(info["headers"])["Location"]
        return str(request_id), str(location)

    def parse_response(self, saml_response: str, outstanding: dict[str, str]) -> SamlAssertion:
        """Check a posted SAMLResponse (signature, audience, time, InResponseTo) and map it (blocking)."""
        try:
            response = self._client.parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding=outstanding
            )
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises a zoo of types for one meaning: refused
            name = type(exc).__name__
            reason = SamlRefusal.UNSOLICITED if "Unsolicited" in name else SamlRefusal.INVALID
            log.info("SAML response refused: %s: %s", name, exc)
            raise SamlError(reason, name) from exc
        if response is None or response.assertion is None:
            raise SamlError(SamlRefusal.INVALID, "no assertion")
        if not getattr(response.assertion, "signature", None):
            # Defence in depth: pysaml2 checks want_assertions_signed, we re-check the result.
            raise SamlError(SamlRefusal.INVALID, "assertion not signed")
        attrs = {k: [str(v) for v in vals] for k, vals in (response.get_identity() or {}).items()}
        profile = self._profile(attrs, response.name_id.text if response.name_id is not None else "")
        not_after = response.not_on_or_after or 0
        expiry = datetime.fromtimestamp(int(not_after), UTC) if not_after else datetime.now(UTC)
        return SamlAssertion(
            profile=profile,
            assertion_id=str(response.assertion.id),
            in_response_to=response.in_response_to,
            not_on_or_after=expiry.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        )

    def _profile(self, attrs: dict[str, list[str]], name_id: str) -> ExternalProfile:
        amap = self.settings.attribute_map

        def first(key: str) -> str | None:
            vals = attrs.get(amap.get(key, ""), [])
            return vals[0] if vals else None

        username = first("username") or name_id
        if not username:
            raise SamlError(SamlRefusal.NO_USERNAME)
        role = map_role(attrs.get(self.settings.role_attribute, []), self.settings.role_map, self.settings.default_role)
        if role is None:
            raise SamlError(SamlRefusal.NO_ROLE)
        facilities = map_facilities(
            attrs.get(self.settings.facility_attribute, []),
            self.settings.facility_map,
            self.settings.default_facility_id,
        )
        return ExternalProfile(
            source=ExternalSource.SAML,
            username=username,
            first_name=first("first_name") or "",
            last_name=first("last_name") or "",
            email=first("email"),
            doc_id=first("doc_id"),
            role=role,
            facility_ids=facilities,
        )
