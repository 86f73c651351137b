"""LDAP sign-in against a real slapd: search, bind, groups, TLS, bad input and an unreachable directory."""

from dataclasses import replace

import pytest

from appliance.auth.ldap import LdapDirectory, LdapOutcome, build_filter
from appliance.auth.settings import LdapSettings
from tests.auth.slapd import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, free_port, group_dn


def settings_for(slapd: Slapd, **over: object) -> LdapSettings:
    """LdapSettings pointing at the test directory with the test group mapping."""
    base = LdapSettings(
        enabled=True,
        urls=[slapd.url],
        bind_dn=SERVICE_DN,
        bind_password=SERVICE_PW,
        base_dn=PEOPLE,
        role_groups={
            group_dn("learners"): "learner",
            group_dn("staff"): "facility_admin",
            group_dn("admins"): "system_admin",
        },
        facility_groups={group_dn("unit-b"): "2"},
        connect_timeout=2.0,
        receive_timeout=3,
    )
    return replace(base, **over)  # type: ignore[arg-type]


def test_valid_sign_in_maps_attributes_role_and_facility(slapd: Slapd) -> None:
    result = LdapDirectory(settings_for(slapd)).authenticate("alice", "alice-pass-1")
    assert result.outcome is LdapOutcome.OK
    p = result.profile
    assert p is not None
    assert (p.username, p.first_name, p.last_name, p.email, p.doc_id) == (
        "alice",
        "Alice",
        "Archer",
        "alice@facility.test",
        "A1001",
    )
    assert p.role == "learner"
    assert p.facility_ids == (2,)


def test_highest_role_wins_and_default_facility(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd))
    carol = d.authenticate("carol", "carol-pass-1")
    assert carol.profile is not None
    assert carol.profile.role == "system_admin"
    assert carol.profile.facility_ids == (1,)
    bob = d.authenticate("BOB", "bob-pass-1")  # directory matching is case-insensitive
    assert bob.profile is not None
    assert bob.profile.role == "facility_admin"
    assert bob.profile.username == "bob"


def test_group_search_mode_gives_same_groups(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, group_mode="search", group_base_dn=GROUPS))
    result = d.authenticate("alice", "alice-pass-1")
    assert result.profile is not None
    assert (result.profile.role, result.profile.facility_ids) == ("learner", (2,))


def test_wrong_password_and_unknown_user(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd))
    assert d.authenticate("alice", "alice-pass-2").outcome is LdapOutcome.BAD_CREDENTIALS
    assert d.authenticate("nobody", "alice-pass-1").outcome is LdapOutcome.UNKNOWN_USER


def test_empty_password_refused_before_any_bind(slapd: Slapd) -> None:
    # A slapd pointed at a closed port proves no connection is even attempted for an empty password.
    d = LdapDirectory(settings_for(slapd, urls=[f"ldap://127.0.0.1:{free_port()}"]))
    assert d.authenticate("alice", "").outcome is LdapOutcome.BAD_CREDENTIALS
    assert d.authenticate("alice", "x").outcome is LdapOutcome.UNAVAILABLE


@pytest.mark.parametrize("name", ["*", "*)(uid=*))(|(uid=*", "alice)(|(uid=*", "al*", "alice\x00", "\\2a"])
def test_filter_metacharacters_never_match(slapd: Slapd, name: str) -> None:
    result = LdapDirectory(settings_for(slapd)).authenticate(name, "alice-pass-1")
    assert result.outcome is LdapOutcome.UNKNOWN_USER


def test_filter_is_escaped() -> None:
    assert build_filter("(uid={username})", "*)(uid=*))(|(uid=*") == r"(uid=\2a\29\28uid=\2a\29\29\28|\28uid=\2a)"


def test_user_without_role_group_refused_unless_default(slapd: Slapd) -> None:
    # dave is only in "learners"; map nothing for him to check the refusal.
    s = settings_for(slapd, role_groups={group_dn("admins"): "system_admin"})
    assert LdapDirectory(s).authenticate("dave", "dave-pass-1").outcome is LdapOutcome.NO_ROLE
    s2 = replace(s, default_role="learner")
    result = LdapDirectory(s2).authenticate("dave", "dave-pass-1")
    assert result.profile is not None
    assert result.profile.role == "learner"


def test_unreachable_directory_is_unavailable(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, urls=[f"ldap://127.0.0.1:{free_port()}"], connect_timeout=0.5))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.UNAVAILABLE


def test_second_url_used_when_first_is_down(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, urls=[f"ldap://127.0.0.1:{free_port()}", slapd.url], connect_timeout=0.5))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.OK


def test_wrong_service_password_is_unavailable_not_user_error(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, bind_password="wrong"))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.UNAVAILABLE


def test_starttls_with_ca_file(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, tls="starttls", ca_file=str(slapd.pki.ca_cert)))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.OK


def test_ldaps_with_ca_file(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, urls=[slapd.ldaps_url], tls="ldaps", ca_file=str(slapd.pki.ca_cert)))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.OK


def test_tls_with_untrusted_ca_is_refused(slapd: Slapd) -> None:
    d = LdapDirectory(settings_for(slapd, urls=[slapd.ldaps_url], tls="ldaps", ca_file=str(slapd.pki.other_ca_cert)))
    assert d.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.UNAVAILABLE
    d2 = LdapDirectory(settings_for(slapd, tls="starttls", ca_file=str(slapd.pki.other_ca_cert)))
    assert d2.authenticate("alice", "alice-pass-1").outcome is LdapOutcome.UNAVAILABLE


def test_ping(slapd: Slapd) -> None:
    assert LdapDirectory(settings_for(slapd)).ping()
    assert not LdapDirectory(settings_for(slapd, bind_password="wrong")).ping()
