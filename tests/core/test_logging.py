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


def test_access_lines_are_json_with_the_request_id_and_written_in_batches() -> None:
    """Access lines look like every other JSON log line, are held until a flush, and mask key=secret paths."""
    import io

    from appliance.observability.logging import AccessLog

    out = io.StringIO()
    access = AccessLog(json_lines=True, stream=out, max_lines=3)
    access.add("GET", "/content/book/A/Page", 200, 0.0012, "rid-1")
    access.add("POST", "/x/password=hunter2", 404, 0.5, None)
    assert out.getvalue() == ""  # nothing written per request
    access.add("GET", "/" + "a" * 500, 200, 0.0, "rid-3")  # the third line fills the batch
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["msg"] for line in lines[:2]] == [
        "GET /content/book/A/Page 200 1.2ms",
        "POST /x/password=******** 404 500.0ms",
    ]
    assert lines[0]["request_id"] == "rid-1" and "request_id" not in lines[1]
    assert lines[0]["logger"] == "appliance.access" and lines[0]["level"] == "info"
    assert lines[0]["ts"].endswith("Z") and len(lines[0]["ts"]) == len("2026-01-01T00:00:00.000000Z")
    assert len(lines[2]["msg"]) < 220  # the path is cut


def test_access_lines_in_text_and_switched_off() -> None:
    """--dev gets readable lines; a disabled access log writes nothing, even on flush."""
    import io

    from appliance.observability.logging import AccessLog

    out = io.StringIO()
    access = AccessLog(json_lines=False, stream=out)
    access.add("GET", "/healthz", 200, 0.0001, "r9")
    access.flush()
    assert out.getvalue().rstrip().endswith("INFO    appliance.access [r9] GET /healthz 200 0.1ms")
    quiet = io.StringIO()
    off = AccessLog(json_lines=True, enabled=False, stream=quiet)
    off.add("GET", "/healthz", 200, 0.0, None)
    off.flush()
    assert quiet.getvalue() == ""
