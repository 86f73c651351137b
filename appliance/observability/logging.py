"""Logging: JSON lines for machines, readable lines for people; every line of a request carries its id."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

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
    ACCESS.configure(json_lines=use_json, enabled=root.level <= logging.INFO)

# --------------------------------------------------------------------------- access log
# Going through `logging` for every request (record, filter, formatter, handler lock, one write each) cost
# about a fifth of an HTTP worker's event-loop time under a reading load. Access lines are therefore
# formatted here in the same shape as the other log lines (JSON in production, readable in --dev) and
# written to stderr a batch at a time: when the batch is full, every flush interval, and at shutdown.

LOGGER = "appliance.access"


def _json_string(text: str) -> str:
    """text as a JSON string; most access-log values need no escaping, and json.dumps costs microseconds."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text, ensure_ascii=False)


class AccessLog:
    """A per-process buffer of access lines."""

    def __init__(self, *, json_lines: bool, enabled: bool = True, stream: TextIO | None = None,
                 max_lines: int = 256) -> None:
        self.json_lines = json_lines
        self.enabled = enabled
        self.stream = stream
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # the date part changes once a second: format it once
            self._second = second
            fmt = "%Y-%m-%dT%H:%M:%S" if self.json_lines else "%H:%M:%S"
            self._stamp = time.strftime(fmt, time.gmtime(second) if self.json_lines else time.localtime(second))
        if self.json_lines:
            return f"{self._stamp}.{int((now - second) * 1_000_000):06d}Z"
        return self._stamp

    def add(self, method: str, path: str, status: int, elapsed_s: float, request_id: str | None) -> None:
        """Queue one request's line (the path is cut to 200 characters; key=value secrets are masked)."""
        if not self.enabled:
            return
        path = path[:200]
        if "=" in path:
            path = scrub(path)
        msg = f"{method} {path} {status} {elapsed_s * 1000:.1f}ms"
        stamp = self._timestamp(time.time())
        if self.json_lines:
            rid = f',"request_id":{_json_string(request_id)}' if request_id else ""
            text = _json_string(msg)
            line = f'{{"ts":"{stamp}","level":"info","logger":"{LOGGER}","msg":{text}{rid}}}'
        else:
            line = f"{stamp} INFO    {LOGGER} [{request_id}] {msg}" if request_id else f"{stamp} INFO    {LOGGER} {msg}"
        self._lines.append(line)
        if len(self._lines) >= self.max_lines:
            self.flush()

    def configure(self, *, json_lines: bool, enabled: bool) -> None:
        """Set the format and the switch (configure_logging does, once per process)."""
        self.flush()
        self.json_lines, self.enabled, self._second = json_lines, enabled, -1

    def flush(self) -> None:
        """Write what is queued in one call."""
        if not self._lines:
            return
        data = "\n".join(self._lines) + "\n"
        self._lines.clear()
        stream = self.stream or sys.stderr
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed (the journal went away): nothing sensible to do with an access line


ACCESS = AccessLog(json_lines=False, enabled=False)
