"""Logging: JSON lines for machines, readable lines for people; every line of a request carries its id."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Values that look like secrets are scrubbed from messages as a last line of defence; the first line is
# never passing them to a logger.
_SECRET = re.compile(r"(?i)(password|passwd|secret|token|authorization|cookie)(\"?\s*[:=]\s*\"?)([^\s\",;&]+)")


def scrub(text: str) -> str:
    """Mask anything shaped like key=secret."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}********", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        for key in ("process_role", "pid"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for --dev and terminals."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        prefix = f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} {record.levelname:<7} {record.name}"
        line = f"{prefix} [{rid}] " if rid else f"{prefix} "
        text = line + scrub(record.getMessage())
        if record.exc_info:
            text += "\n" + scrub(self.formatException(record.exc_info))
        return text


def configure_logging(level: str, fmt: str, *, dev: bool) -> None:
    """Install one stderr handler with the chosen format; quiet noisy libraries."""
    use_json = fmt == "json" or (fmt == "auto" and not dev and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "nats", "asyncio", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
