"""Configuration sections of the identity feature: [auth], [ldap], [saml]."""

from dataclasses import dataclass


@dataclass(frozen=True)
class AuthSettings:
    """[auth]: local accounts, sessions, lockout and rate limits."""


@dataclass(frozen=True)
class LdapSettings:
    """[ldap]: LDAP / Active Directory sign-in."""


@dataclass(frozen=True)
class SamlSettings:
    """[saml]: SAML 2.0 single sign-on."""
