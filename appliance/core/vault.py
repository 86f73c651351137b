"""Secrets encrypted at rest (AES-256-GCM) with one key kept outside the database.

Provider credentials (sync) and webhook signing secrets (events) share the key; each use binds its own
associated data (`purpose`), so a ciphertext of one kind never opens as the other.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1:"
AAD = b"appliance.sync.provider-credentials"
SYSTEMD_NAME = "sync-key"


class CredentialsError(Exception):
    """The key is missing/unreadable or a ciphertext does not decrypt with it."""


def key_path(configured: Path, data_dir: Path, environ: dict[str, str] | None = None) -> Path:
    """Where the key lives: configured file, else a systemd credential, else <data_dir>/secrets/sync.key."""
    env = os.environ if environ is None else environ
    if str(configured) not in ("", "."):
        return configured
    creds_dir = env.get("CREDENTIALS_DIRECTORY")
    if creds_dir and (Path(creds_dir) / SYSTEMD_NAME).is_file():
        return Path(creds_dir) / SYSTEMD_NAME
    return data_dir / "secrets" / "sync.key"


def load_or_create_key(path: Path) -> bytes:
    """Read the 32-byte key, creating it 0600 (folder 0700) on first start. Blocking."""
    if path.exists():
        raw = path.read_bytes().strip()
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError as exc:
            raise CredentialsError(f"{path}: not a base64 key") from exc
        if len(key) != 32:
            raise CredentialsError(f"{path}: key must be 32 bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once never overwrite each other's fresh key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_key(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


class Vault:
    """Encrypts and decrypts secret objects for one purpose (the AES-GCM associated data)."""

    def __init__(self, key: bytes, purpose: bytes = AAD) -> None:
        self._key = key
        self._aad = purpose
        self._aead = AESGCM(key)

    def for_purpose(self, purpose: bytes) -> Vault:
        """The same key bound to other associated data (webhook secrets vs provider credentials)."""
        return Vault(self._key, purpose)

    def seal(self, credentials: dict[str, Any]) -> str:
        """Object → `v1:` + base64(nonce ‖ ciphertext)."""
        nonce = secrets.token_bytes(12)
        blob = self._aead.encrypt(nonce, json.dumps(credentials, sort_keys=True).encode(), self._aad)
        return PREFIX + base64.b64encode(nonce + blob).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        """Inverse of seal; CredentialsError when the key does not match."""
        if not sealed.startswith(PREFIX):
            raise CredentialsError("unknown credentials format")
        raw = base64.b64decode(sealed[len(PREFIX) :])
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], self._aad)
        except InvalidTag as exc:
            raise CredentialsError("credentials do not decrypt with this key") from exc
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise CredentialsError("credentials are not an object")
        return value
