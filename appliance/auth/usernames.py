"""Usernames: normalisation and validation shared by every way an account is created."""

import re
import unicodedata

MAX_USERNAME_LENGTH = 64
# Letters, digits and a few separators, after NFKC; no spaces, quotes, LDAP or SQL metacharacters.
_ALLOWED = re.compile(r"^[\w.@-]+$", re.UNICODE)


class UsernameError(ValueError):
    """The username is empty, too long or holds characters that are not allowed."""


def normalize_username(raw: str) -> str:
    """Return the NFKC form of a username with surrounding white space removed."""
    return unicodedata.normalize("NFKC", raw).strip()


def username_key(raw: str) -> str:
    """Return the unique, case-insensitive key of a username (NFKC then casefold, then NFKC again)."""
    return unicodedata.normalize("NFKC", normalize_username(raw).casefold())


def validate_username(raw: str) -> str:
    """Return the normalised username or raise UsernameError saying why it is refused."""
    name = normalize_username(raw)
    if not name:
        raise UsernameError("username is empty")
    if len(name) > MAX_USERNAME_LENGTH:
        raise UsernameError(f"username is longer than {MAX_USERNAME_LENGTH} characters")
    if "\x00" in name or not _ALLOWED.match(name):
        raise UsernameError("username may hold only letters, digits and . _ @ -")
    if len(_scripts(name)) > 1:
        # "аdmin" with a Cyrillic а looks exactly like "admin": refuse names that mix scripts.
        raise UsernameError("username mixes letters of different scripts")
    return name


def _scripts(name: str) -> set[str]:
    """The scripts of the letters of a name (first word of the Unicode name: LATIN, CYRILLIC, ...)."""
    found = set()
    for ch in name:
        if ch.isalpha():
            found.add(unicodedata.name(ch, "UNKNOWN").split(" ")[0])
    return found
