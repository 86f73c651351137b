"""Tests of argon2id password hashing, rehash detection and generated passwords."""

import time

import pytest

from appliance.auth import passwords
from appliance.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    UNAMBIGUOUS_ALPHABET,
    PasswordError,
    check_strength,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_is_argon2id_and_verifies() -> None:
    stored = hash_password("correct horse 9")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse 9")
    assert not verify_password(stored, "correct horse 8")
    assert not needs_rehash(stored)


def test_same_password_hashes_differ() -> None:
    assert hash_password("same-pass-1") != hash_password("same-pass-1")


@pytest.mark.parametrize("bad", ["", "a" * (MAX_PASSWORD_LENGTH + 1), "abc\x00def", "x" * 10_000])
def test_unusable_passwords_refused_before_hashing(bad: str) -> None:
    with pytest.raises(PasswordError):
        hash_password(bad)
    assert not verify_password(hash_password("real-pass-1"), bad)


def test_verify_tolerates_garbage_hash() -> None:
    assert not verify_password("not-a-hash", "whatever1")
    assert not verify_password(None, "whatever1")
    assert needs_rehash("not-a-hash")


def test_parameter_change_triggers_rehash() -> None:
    stored = hash_password("param-pass-1")
    try:
        passwords.configure(time_cost=3)
        assert needs_rehash(stored)
        assert verify_password(stored, "param-pass-1")
        assert not needs_rehash(hash_password("param-pass-1"))
    finally:
        passwords.configure()
    assert not needs_rehash(stored)


def test_one_verification_is_well_under_budget() -> None:
    stored = hash_password("budget-pass-1")
    best = min(_timed(lambda: verify_password(stored, "budget-pass-1")) for _ in range(3))
    # Budget is ~50 ms on the 2-core target; the best of three tolerates a busy shared machine.
    assert best < 0.2


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_generated_passwords_are_unambiguous_strong_and_distinct() -> None:
    seen = {generate_password() for _ in range(50)}
    assert len(seen) == 50
    for pw in seen:
        assert set(pw) <= set(UNAMBIGUOUS_ALPHABET)
        assert not set(pw) & set("0O1lI")
        check_strength(pw)


@pytest.mark.parametrize("weak", ["short1", "onlyletters", "1234567890"])
def test_weak_new_passwords_refused(weak: str) -> None:
    with pytest.raises(PasswordError):
        check_strength(weak)
