"""Configuration sections of the identity feature: [auth], [ldap], [saml]."""

from dataclasses import dataclass

from appliance.core.settings import setting


@dataclass(frozen=True)
class AuthSettings:
    """[auth]: local accounts, sessions, lockout and rate limits."""

    session_idle_minutes: int = setting(30, help="Minutes without a request after which a session ends", min=1)
    session_absolute_hours: int = setting(
        12, help="Hours after sign-in after which a session ends however active it is", min=1
    )
    cookie_name: str = setting("appliance_session", help="Name of the session cookie")
    lockout_threshold: int = setting(
        5, help="Failed sign-ins within lockout_window_minutes that lock a username", min=1
    )
    lockout_address_threshold: int = setting(
        20,
        help="Failed sign-ins within lockout_window_minutes that lock a client address (a classroom may share one)",
        min=1,
    )
    lockout_window_minutes: int = setting(15, help="Window in which failed sign-ins are counted", min=1)
    lockout_minutes: int = setting(15, help="How long a lockout lasts", min=1)
    api_rate_per_minute: int = setting(
        600, help="API requests per minute allowed to one signed-in user (token bucket refill)", min=1
    )
    api_burst: int = setting(120, help="API requests one signed-in user may make at once (bucket size)", min=1)
    api_address_rate_per_minute: int = setting(
        3000,
        help="API requests per minute allowed from one client address (a classroom may share one)",
        min=1,
    )
    api_address_burst: int = setting(600, help="API requests one client address may make at once", min=1)
    login_rate_per_minute: int = setting(
        60,
        help="Sign-in attempts per minute allowed from one client address (a classroom may share one)",
        min=1,
    )
    login_burst: int = setting(60, help="Sign-in token bucket size per client address", min=1)
    login_user_rate_per_minute: int = setting(10, help="Sign-in attempts per minute allowed for one username", min=1)
    login_user_burst: int = setting(10, help="Sign-in token bucket size per username", min=1)
    argon2_time_cost: int = setting(
        2, help="argon2id iterations; changing it rehashes passwords at sign-in", min=1, max=20
    )
    argon2_memory_kib: int = setting(
        19456, help="argon2id memory in KiB; changing it rehashes passwords at sign-in", min=8192, max=1048576
    )


@dataclass(frozen=True)
class LdapSettings:
    """[ldap]: LDAP / Active Directory sign-in."""

    enabled: bool = setting(False, help="Try LDAP for usernames that are not local accounts")
    urls: list[str] = setting([], help="Directory server URLs tried in order, e.g. ldaps://dc1.example:636")
    tls: str = setting(
        "none",
        help="Transport security: none, starttls (upgrade ldap://) or ldaps (ldaps:// URLs)",
        choices=("none", "starttls", "ldaps"),
    )
    ca_file: str = setting("", help="PEM file of the CA that signed the directory's certificate (TLS only)")
    bind_dn: str = setting("", help="DN of the service account used to search for users")
    bind_password: str = setting("", help="Password of the service account", secret=True)
    base_dn: str = setting("", help="Subtree searched for users")
    user_filter: str = setting(
        "(&(objectClass=inetOrgPerson)(uid={username}))",
        help="Search filter; {username} is replaced by the RFC 4515-escaped sign-in name",
    )
    attribute_map: dict[str, str] = setting(
        {
            "username": "uid",
            "first_name": "givenName",
            "last_name": "sn",
            "email": "mail",
            "doc_id": "employeeNumber",
        },
        help="Local field → directory attribute (keys: username, first_name, last_name, email, doc_id)",
    )
    group_mode: str = setting(
        "memberof",
        help="How groups are found: memberof (attribute on the user) or search (group search)",
        choices=("memberof", "search"),
    )
    group_base_dn: str = setting("", help="Subtree searched for groups when group_mode = search")
    group_filter: str = setting(
        "(&(objectClass=groupOfNames)(member={dn}))",
        help="Group search filter; {dn} is replaced by the escaped user DN (group_mode = search)",
    )
    role_groups: dict[str, str] = setting(
        {}, help="Group DN → role (learner, facility_admin, department_admin, system_admin); highest wins"
    )
    facility_groups: dict[str, str] = setting({}, help="Group DN → facility id; the first match is the home")
    default_role: str = setting(
        "",
        help="Role when no role group matches; empty refuses sign-in",
        choices=("", "learner", "facility_admin", "department_admin", "system_admin"),
    )
    default_facility_id: int = setting(1, help="Facility when no facility group matches", min=1)
    connect_timeout: float = setting(5.0, help="Seconds to wait for a TCP connection to a directory server", min=0.1)
    receive_timeout: int = setting(10, help="Whole seconds to wait for a directory answer", min=1)


@dataclass(frozen=True)
class SamlSettings:
    """[saml]: SAML 2.0 single sign-on."""

    enabled: bool = setting(False, help="Offer sign-in through a SAML 2.0 identity provider")
    base_url: str = setting(
        "", help="External base URL of the appliance, e.g. https://appliance.unit-a.lan (ACS and metadata)"
    )
    sp_entity_id: str = setting("", help="Entity ID of this service provider (default: <base_url>/saml/metadata)")
    idp_metadata_file: str = setting("", help="Path of the identity provider's metadata XML")
    sp_key_file: str = setting("", help="PEM private key of this SP (signs requests; optional)")
    sp_cert_file: str = setting("", help="PEM certificate of this SP published in its metadata (optional)")
    xmlsec_binary: str = setting("/usr/bin/xmlsec1", help="Path of the xmlsec1 binary used to check signatures")
    attribute_map: dict[str, str] = setting(
        {
            "username": "uid",
            "first_name": "givenName",
            "last_name": "sn",
            "email": "mail",
            "doc_id": "employeeNumber",
        },
        help="Local field → SAML attribute name; username falls back to the NameID",
    )
    role_attribute: str = setting("role", help="SAML attribute whose values select the role")
    role_map: dict[str, str] = setting({}, help="Value of role_attribute → role; highest wins")
    facility_attribute: str = setting("facility", help="SAML attribute whose value selects the facility")
    facility_map: dict[str, str] = setting({}, help="Value of facility_attribute → facility id")
    default_role: str = setting(
        "",
        help="Role when no role value matches; empty refuses sign-in",
        choices=("", "learner", "facility_admin", "department_admin", "system_admin"),
    )
    default_facility_id: int = setting(1, help="Facility when no facility value matches", min=1)
    clock_skew_seconds: int = setting(
        60, help="Tolerated clock difference with the IdP for time conditions", min=0, max=600
    )
