"""LDAP / Active Directory sign-in: search as the service account, bind as the found DN, map groups.

Every method of `LdapDirectory` blocks (ldap3 is synchronous): call it through
`run_blocking("ldap", ...)`.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ldap3 import Connection

from appliance.auth.external import ExternalProfile, ExternalSource, map_facilities, map_role
from appliance.auth.passwords import MAX_PASSWORD_LENGTH
from appliance.auth.settings import LdapSettings

log = logging.getLogger(__name__)



@cache
def _lib() -> SimpleNamespace:
    """ldap3, imported on first use: about 150 ms of start-up that appliances without LDAP never need."""
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

    return SimpleNamespace(BASE=ldap3.BASE, SUBTREE=ldap3.SUBTREE, Connection=ldap3.Connection, Server=ldap3.Server,
                           Tls=ldap3.Tls, LDAPException=LDAPException, escape_filter_chars=escape_filter_chars)


class LdapOutcome(StrEnum):
    """How a directory sign-in ended."""

    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    UNKNOWN_USER = "unknown_user"
    NO_ROLE = "no_role"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class LdapResult:
    """The outcome and, when OK, the mapped profile."""

    outcome: LdapOutcome
    profile: ExternalProfile | None = None
    dn: str = ""


class TlsMode(StrEnum):
    """Transport security towards the directory."""

    NONE = "none"
    STARTTLS = "starttls"
    LDAPS = "ldaps"


def build_filter(template: str, username: str) -> str:
    """Put the RFC 4515-escaped username into the filter template (never the raw input)."""
    return template.replace("{username}", _lib().escape_filter_chars(username))


class LdapDirectory:
    """One configured directory (possibly several servers tried in order)."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self.tls_mode = TlsMode(settings.tls)
        tls = None
        if self.tls_mode is not TlsMode.NONE:
            # Always verify the directory's certificate: a spoofed DC would otherwise collect passwords.
            tls = _lib().Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=settings.ca_file or None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._servers = [
            _lib().Server(
                url,
                use_ssl=self.tls_mode is TlsMode.LDAPS,
                tls=tls,
                connect_timeout=settings.connect_timeout,
                get_info="NO_INFO",
            )
            for url in settings.urls
        ]
        self._attrs = dict(settings.attribute_map)

    def _connect(self, user: str, password: str) -> Connection:
        """Open and secure a connection to the first server that answers; LDAPException if none does."""
        # Our own loop rather than ldap3's ServerPool: the pool sleeps 10 s after a cycle of dead servers.
        error: Exception = _lib().LDAPException("no LDAP server configured")
        for server in self._servers:
            conn = _lib().Connection(
                server,
                user=user,
                password=password,
                receive_timeout=self.settings.receive_timeout,
                read_only=True,
                raise_exceptions=False,
                auto_bind="NONE",
            )
            try:
                conn.open()
                if self.tls_mode is TlsMode.STARTTLS and not conn.start_tls():
                    raise _lib().LDAPException(f"StartTLS refused: {conn.result}")
            except _lib().LDAPException as exc:
                conn.unbind()
                error = exc
                continue
            return conn
        raise error

    def authenticate(self, username: str, password: str) -> LdapResult:
        """Check a username and password against the directory and map the person (blocking)."""
        # An empty password makes a simple bind "unauthenticated" and it SUCCEEDS: refuse before any bind.
        if not password or len(password) > MAX_PASSWORD_LENGTH or "\x00" in password or not username:
            return LdapResult(LdapOutcome.BAD_CREDENTIALS)
        try:
            service = self._connect(self.settings.bind_dn, self.settings.bind_password)
        except _lib().LDAPException as exc:
            log.warning("LDAP directory unreachable: %s", exc)
            return LdapResult(LdapOutcome.UNAVAILABLE)
        try:
            if not service.bind():
                log.error("LDAP service account bind refused: %s", service.result.get("description"))
                return LdapResult(LdapOutcome.UNAVAILABLE)
            entry = self._find_user(service, username)
            if entry is None:
                return LdapResult(LdapOutcome.UNKNOWN_USER)
            dn, attrs = entry
            if not self._check_password(dn, password):
                return LdapResult(LdapOutcome.BAD_CREDENTIALS, dn=dn)
            groups = self._groups(service, dn, attrs)
        except _lib().LDAPException as exc:
            log.warning("LDAP directory failed during sign-in: %s", exc)
            return LdapResult(LdapOutcome.UNAVAILABLE)
        finally:
            service.unbind()
        return self._profile(dn, attrs, groups, username)

    def _find_user(self, conn: Connection, username: str) -> tuple[str, dict[str, Any]] | None:
        attributes = [a for a in self._attrs.values() if a]
        if self.settings.group_mode == "memberof":
            attributes.append("memberOf")
        ok = conn.search(
            self.settings.base_dn,
            build_filter(self.settings.user_filter, username),
            search_scope=_lib().SUBTREE,
            attributes=attributes,
            size_limit=2,
        )
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if not ok and conn.result.get("description") not in ("success", "noSuchObject", "sizeLimitExceeded"):
            raise _lib().LDAPException(f"user search failed: {conn.result.get('description')}")
        if len(entries) != 1:
            # Zero or several matches: never guess which person is meant.
            return None
        return entries[0]["dn"], dict(entries[0]["attributes"])

    def _check_password(self, dn: str, password: str) -> bool:
        conn = self._connect(dn, password)
        try:
            if conn.bind():
                return True
            if conn.result.get("description") == "invalidCredentials":
                return False
            raise _lib().LDAPException(f"user bind failed: {conn.result.get('description')}")
        finally:
            conn.unbind()

    def _groups(self, conn: Connection, dn: str, attrs: dict[str, Any]) -> list[str]:
        if self.settings.group_mode == "memberof":
            return [str(g) for g in _values(attrs.get("memberOf"))]
        flt = self.settings.group_filter.replace("{dn}", _lib().escape_filter_chars(dn))
        base = self.settings.group_base_dn or self.settings.base_dn
        conn.search(base, flt, search_scope=_lib().SUBTREE, attributes=[])
        return [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]

    def _profile(self, dn: str, attrs: dict[str, Any], groups: list[str], typed: str) -> LdapResult:
        role = map_role(groups, self.settings.role_groups, self.settings.default_role)
        if role is None:
            return LdapResult(LdapOutcome.NO_ROLE, dn=dn)

        def first(key: str) -> str | None:
            name = self._attrs.get(key)
            vals = _values(attrs.get(name)) if name else []
            return str(vals[0]) if vals else None

        profile = ExternalProfile(
            source=ExternalSource.LDAP,
            username=first("username") or typed,
            first_name=first("first_name") or "",
            last_name=first("last_name") or "",
            email=first("email"),
            doc_id=first("doc_id"),
            role=role,
            facility_ids=map_facilities(groups, self.settings.facility_groups, self.settings.default_facility_id),
        )
        return LdapResult(LdapOutcome.OK, profile=profile, dn=dn)

    def ping(self) -> bool:
        """Return True if the service account can bind (used by health checks; blocking)."""
        try:
            conn = self._connect(self.settings.bind_dn, self.settings.bind_password)
        except _lib().LDAPException:
            return False
        try:
            return bool(conn.bind()) and conn.search(self.settings.base_dn, "(objectClass=*)", search_scope=_lib().BASE)
        finally:
            conn.unbind()


def _values(raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return list(raw)
    return [raw]
