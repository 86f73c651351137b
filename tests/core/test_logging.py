"""Logs: JSON lines with the request id when not a TTY, secrets scrubbed."""

from __future__ import annotations

import json
import logging

from appliance.observability.logging import JsonFormatter, TextFormatter, request_id_var, scrub


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("appliance.test", logging.INFO, __file__, 1, msg, args, None)


def test_json_lines_carry_request_id_and_scrub_secrets() -> None:
    token = request_id_var.set("rid-7")
    try:
        record = _record("login failed password=%s token: %s", "hunter2", "abc.def")
        record.request_id = request_id_var.get()
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    data = json.loads(line)
    assert data["request_id"] == "rid-7"
    assert data["level"] == "info"
    assert "hunter2" not in line
    assert "abc.def" not in line


def test_scrub_masks_common_secret_shapes() -> None:
    text = 'Authorization: Bearer-xyz cookie=sess123 {"password": "p@ss"} secret=s1'
    out = scrub(text)
    for secret in ("Bearer-xyz", "sess123", "p@ss", "s1"):
        assert secret not in out


def test_text_format_is_readable() -> None:
    record = _record("hello %s", "world")
    record.request_id = None
    assert TextFormatter().format(record).endswith("appliance.test hello world")
