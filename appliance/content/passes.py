"""Content passes: HMAC-signed credentials that let a browser read archives on the content origin, nothing more.

A pass names the application session it was issued for (0 = an anonymous reader), the user, and the app
origin that may frame the content. It is issued by the app origin to the page of a signed-in (or
anonymous, where allowed) reader, travels once in a URL (a short-lived URL pass), and is exchanged by the
content origin for a cookie pass. Neither is a session: the API knows nothing of them, and the content
origin believes a cookie pass only while the session it names is still live (checked through
SESSION_PRINCIPAL at most CACHE_TTL_S old), so sign-out, deactivation or a password reset ends it.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "content-pass.key"
KEY_BYTES = 32
URL_PASS_TTL_S = 60  # long enough for a slow page to load its frame, short enough to be useless in a log
COOKIE_PASS_TTL_S = 12 * 3600  # an upper bound only: the session behind it is re-checked every few seconds
MAX_PASS_LENGTH = 600
CHECKED_MAX = 10_000  # cookie passes whose signature was already checked, per process


class PassKind(enum.Enum):
    """Where a pass may be used; the kind is part of what is signed, so one can't stand in for the other."""

    URL = "u"
    COOKIE = "c"


@dataclass(frozen=True)
class ContentPass:
    """What a pass says: whose session (0 = anonymous), which user, who may frame, until when (epoch s)."""

    session_id: int
    user_id: int
    app_origin: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PassSigner:
    """Signs and checks passes with the appliance's content-pass key (shared by every process)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        # Every asset of a page carries the same cookie: check its signature once, not thirty times.
        self._checked: dict[tuple[PassKind, str], ContentPass] = {}

    def _mac(self, kind: PassKind, payload: bytes) -> bytes:
        return hmac.new(self._key, kind.value.encode() + b"|" + payload, hashlib.sha256).digest()

    def sign(self, kind: PassKind, found: ContentPass) -> str:
        """The pass as a URL- and cookie-safe string."""
        payload = f"{found.session_id}|{found.user_id}|{found.expires}|{found.app_origin}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(kind, payload))}"

    def verify(self, kind: PassKind, token: str | None, now: float) -> ContentPass | None:
        """The pass if it is of this kind, untampered and unexpired; None for anything else."""
        if not token or len(token) > MAX_PASS_LENGTH:
            return None
        hit = self._checked.get((kind, token))
        if hit is not None:
            return hit if hit.expires > now else None
        found = self._verify(kind, token, now)
        if found is not None:
            if len(self._checked) >= CHECKED_MAX:
                self._checked.clear()
            self._checked[(kind, token)] = found
        return found

    def _verify(self, kind: PassKind, token: str, now: float) -> ContentPass | None:
        body, sep, mac = token.partition(".")
        if not sep:
            return None
        try:
            payload, given = _unb64(body), _unb64(mac)
            sid, uid, expires, origin = payload.decode("utf-8").split("|", 3)
            found = ContentPass(int(sid), int(uid), origin, int(expires))
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(given, self._mac(kind, payload)) or found.expires <= now:
            return None
        return found


def load_or_create_key(data_dir: Path) -> bytes:
    """The key in <data_dir>/content-pass.key, made on first use (every process reads the same file).

    Written to a temporary file and hard-linked into place, so a process racing the primary either
    links first or reads a complete key, never a half-written one.
    """
    path = data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        key = path.read_bytes()
        if len(key) == KEY_BYTES:
            return key
    tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise RuntimeError(f"{path} is not a {KEY_BYTES}-byte key; remove it to make a new one")
    return key
