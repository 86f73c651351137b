"""A real SAML 2.0 identity provider built with pysaml2, served by aiohttp on a free loopback port.

It signs in whoever the test says (`idp.user`) and answers in the way the test says (`idp.mode`):
valid, unsigned, wrongly signed (a key not in its metadata), expired, or for another audience.
"""

import html
import re
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.utils import CryptographyDeprecationWarning
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_UNSPECIFIED, NameID

with warnings.catch_warnings():
    # pysaml2 7.5 touches cryptography's deprecated CFB name at import; not ours to fix.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2.server import Server

from tests.auth.pki import self_signed


class IdpMode(StrEnum):
    """How the next answer is made."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    WRONG_KEY = "wrong_key"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"


class LocalIdp:
    """The IdP: start(), configure(sp_metadata), then browsers follow redirects to it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.key, self.cert = self_signed(workdir, "idp", "Test IdP")
        self.rogue_key, self.rogue_cert = self_signed(workdir, "rogue", "Test IdP")
        self.mode = IdpMode.VALID
        self.user: dict[str, list[str]] = {}
        self.issued: list[str] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._servers: dict[str, Server] = {}

    async def start(self) -> None:
        """Listen on a free port (the URL is needed before the metadata can be written)."""
        app = web.Application()
        app.router.add_get("/sso/redirect", self._sso)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    @property
    def entity_id(self) -> str:
        """The IdP's entity id."""
        return self.base_url + "/idp"

    def _config(self, sp_metadata: str, key: Path, cert: Path, lifetime_minutes: int) -> IdPConfig:
        conf: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": "/usr/bin/xmlsec1",
            "key_file": str(key),
            "cert_file": str(cert),
            "metadata": {"inline": [sp_metadata]},
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(self.base_url + "/sso/redirect", BINDING_HTTP_REDIRECT)]},
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": lifetime_minutes},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                    "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                }
            },
        }
        config = IdPConfig()
        config.load(conf)
        return config

    def configure(self, sp_metadata: str) -> Path:
        """Load the SP's metadata; write and return the path of this IdP's metadata (genuine key only)."""
        genuine = self._config(sp_metadata, self.key, self.cert, 5)
        self._servers = {
            "genuine": Server(config=genuine),
            "rogue": Server(config=self._config(sp_metadata, self.rogue_key, self.rogue_cert, 5)),
            "expired": Server(config=self._config(sp_metadata, self.key, self.cert, -10)),
        }
        path = self.workdir / "idp-metadata.xml"
        xml = create_metadata_string(None, config=genuine, valid=24)
        path.write_bytes(xml if isinstance(xml, bytes) else xml.encode())
        return path

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _sso(self, request: web.Request) -> web.Response:
        server = self._servers["genuine"]
        req = server.parse_authn_request(request.query["SAMLRequest"], BINDING_HTTP_REDIRECT)
        message = req.message
        acs_url = message.assertion_consumer_service_url
        sp_entity_id = message.issuer.text
        if self.mode is IdpMode.WRONG_KEY:
            server = self._servers["rogue"]
        elif self.mode is IdpMode.EXPIRED:
            server = self._servers["expired"]
        audience = "https://other-sp.test/metadata" if self.mode is IdpMode.WRONG_AUDIENCE else sp_entity_id
        username = self.user["uid"][0]
        response = server.create_authn_response(
            identity=self.user,
            in_response_to=message.id,
            destination=acs_url,
            sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=username),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_assertion=self.mode is not IdpMode.UNSIGNED,
            sign_response=False,
        )
        self.issued.append(str(response))
        args = server.apply_binding(
            BINDING_HTTP_POST, str(response), acs_url, request.query.get("RelayState", ""), response=True
        )
        return web.Response(text=args["data"], content_type="text/html")


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """Extract the auto-post form's action and hidden fields from an IdP answer page."""
    action = html.unescape(re.search(r'action="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    fields = {html.unescape(n): html.unescape(v) for n, v in re.findall(r'name="([^"]+)"\s+value="([^"]*)"', page)}
    return action, fields
