"""The identity feature's declaration: local accounts, LDAP, SAML, sessions, roles and API tokens."""

from appliance.auth.settings import AuthSettings, LdapSettings, SamlSettings
from appliance.core.feature import Feature

FEATURE = Feature(
    name="auth",
    order=10,
    sections={"auth": AuthSettings, "ldap": LdapSettings, "saml": SamlSettings},
    setup="appliance.auth.feature:setup",
    cli="appliance.auth.cli:register",
    description="accounts, sign-in (local, LDAP, SAML), sessions, roles and API tokens",
)
