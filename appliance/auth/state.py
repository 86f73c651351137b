"""Per-process identity state: settings, session store, lockouts, rate limiters, LDAP and SAML."""

from dataclasses import dataclass
from datetime import timedelta

from appliance.auth.ldap import LdapDirectory
from appliance.auth.lockout import LockoutPolicy, Lockouts
from appliance.auth.ratelimit import Limiter
from appliance.auth.saml import SamlServiceProvider
from appliance.auth.sessions import Sessions
from appliance.auth.settings import AuthSettings, LdapSettings, SamlSettings
from appliance.core.clock import Clock
from appliance.db.database import Database


@dataclass
class IdentityState:
    """Everything the identity routes and middlewares share in one process."""

    auth: AuthSettings
    ldap_settings: LdapSettings
    saml_settings: SamlSettings
    sessions: Sessions
    lockouts: Lockouts
    api_limiter: Limiter
    api_address_limiter: Limiter
    login_limiter: Limiter
    login_user_limiter: Limiter
    ldap: LdapDirectory | None
    saml: SamlServiceProvider | None
    trusted_proxies: list[str]
    secure_cookies: bool

    @classmethod
    def build(
        cls,
        db: Database,
        clock: Clock,
        auth: AuthSettings,
        ldap: LdapSettings,
        saml: SamlSettings,
        *,
        trusted_proxies: list[str],
        secure_cookies: bool,
    ) -> "IdentityState":
        """Make the state from the config sections."""
        return cls(
            auth=auth,
            ldap_settings=ldap,
            saml_settings=saml,
            sessions=Sessions(
                db, clock, timedelta(minutes=auth.session_idle_minutes), timedelta(hours=auth.session_absolute_hours)
            ),
            lockouts=Lockouts(
                db,
                LockoutPolicy(
                    auth.lockout_threshold,
                    auth.lockout_address_threshold,
                    timedelta(minutes=auth.lockout_window_minutes),
                    timedelta(minutes=auth.lockout_minutes),
                ),
            ),
            api_limiter=Limiter(auth.api_rate_per_minute, auth.api_burst),
            api_address_limiter=Limiter(auth.api_address_rate_per_minute, auth.api_address_burst),
            login_limiter=Limiter(auth.login_rate_per_minute, auth.login_burst),
            login_user_limiter=Limiter(auth.login_user_rate_per_minute, auth.login_user_burst),
            ldap=LdapDirectory(ldap) if ldap.enabled else None,
            saml=None,  # built off the event loop by the feature's context (it parses IdP metadata)
            trusted_proxies=list(trusted_proxies),
            secure_cookies=secure_cookies,
        )
