"""Credentials of the embedded NATS server: generated at first start, kept in a 0600 file."""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NatsCredentials:
    """User and password the appliance's own processes use."""

    user: str
    password: str


def load_or_create(path: Path) -> NatsCredentials:
    """Read the credentials file, creating it (0600, atomically) on first start."""
    if path.exists():
        data = json.loads(path.read_text())
        return NatsCredentials(data["user"], data["password"])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = NatsCredentials("appliance", secrets.token_urlsafe(32))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"user": creds.user, "password": creds.password}, fh)
    os.replace(tmp, path)
    return creds


def load_external(path: Path) -> NatsCredentials | None:
    """Credentials for an external NATS from a JSON file {"user", "password"}, or None."""
    if str(path) in ("", "."):
        return None
    data = json.loads(path.read_text())
    return NatsCredentials(data["user"], data["password"])
