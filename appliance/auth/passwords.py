"""Password hashing with argon2id: hash, verify, rehash check and one-time password generation.

Every function except `generate_password` is CPU-bound and blocking: call it through
`run_blocking("auth", ...)`, never on the event loop.

Parameters: argon2id, time_cost=2, memory_cost=19 MiB, parallelism=1 (the OWASP baseline).
Measured on the 2-core build machine (2026-11-26, shared with other jobs): one verification
costs ~28 ms median (27 ms min); m=32 MiB already costs ~77 ms, above the ~50 ms budget that
lets 50 learners sign in at once within 3 s on 2 cores. argon2-cffi releases the GIL, so two
verifications run in parallel on two threads.
"""

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DEFAULT_TIME_COST = 2
DEFAULT_MEMORY_KIB = 19456
DEFAULT_PARALLELISM = 1
# Longer inputs are refused before hashing: argon2 would hash 10 MB happily, which is a cheap DoS.
MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 8
# No 0/O, 1/l/I: a temporary password is read aloud or copied from paper by a learner.
UNAMBIGUOUS_ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789"
GENERATED_LENGTH = 14

_hasher = PasswordHasher(
    time_cost=DEFAULT_TIME_COST, memory_cost=DEFAULT_MEMORY_KIB, parallelism=DEFAULT_PARALLELISM, type=Type.ID
)


class PasswordError(ValueError):
    """The password is refused (empty, too long or holding a NUL byte) before any hashing."""


def configure(time_cost: int = DEFAULT_TIME_COST, memory_kib: int = DEFAULT_MEMORY_KIB) -> None:
    """Replace the process-wide hasher parameters (from [auth]); stored hashes with others get rehashed."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=DEFAULT_PARALLELISM, type=Type.ID)


def check_length(pw: str) -> None:
    """Raise PasswordError if the password cannot even be considered (empty, too long, NUL)."""
    if not pw:
        raise PasswordError("password is empty")
    if len(pw) > MAX_PASSWORD_LENGTH:
        raise PasswordError(f"password is longer than {MAX_PASSWORD_LENGTH} characters")
    if "\x00" in pw:
        raise PasswordError("password holds a NUL byte")
    if not pw.isprintable() and not _encodable(pw):
        raise PasswordError("password is not valid Unicode text")


def _encodable(pw: str) -> bool:
    # JSON may smuggle lone surrogates ("\ud800") that no UTF-8 encoder accepts.
    try:
        pw.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_strength(pw: str) -> None:
    """Raise PasswordError if a new password is too weak to be set (length and character classes)."""
    check_length(pw)
    if len(pw) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if pw.isalpha() or pw.isdigit():
        raise PasswordError("password must mix letters with digits or symbols")


def hash_password(pw: str) -> str:
    """Return the argon2id hash of a password (blocking; raises PasswordError for unusable input)."""
    check_length(pw)
    return _hasher.hash(pw)


def verify_password(stored: str | None, pw: str) -> bool:
    """Return True if pw matches the stored hash (blocking); False for any mismatch or unusable input."""
    try:
        check_length(pw)
    except PasswordError:
        return False
    if not stored:
        return False
    try:
        return _hasher.verify(stored, pw)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Return True if the stored hash was made with other parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


_DUMMY_HASH: str | None = None


def dummy_hash() -> str:
    """Return a hash of a random secret, used to spend the same time on unknown users (blocking once)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None or needs_rehash(_DUMMY_HASH):
        _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))
    return _DUMMY_HASH


def generate_password(length: int = GENERATED_LENGTH) -> str:
    """Return a random password from an unambiguous alphabet that passes check_strength."""
    while True:
        pw = "".join(secrets.choice(UNAMBIGUOUS_ALPHABET) for _ in range(length))
        if any(c.isdigit() for c in pw) and any(c.isalpha() for c in pw):
            return pw
