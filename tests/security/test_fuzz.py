"""Schemathesis against a live daemon, from the OpenAPI document it serves: zero 5xx, answers that match
the document, and no learner past a staff route's policy.

Bounded so both runs finish in under three minutes on a 2-core machine: the coverage phase (boundary and
enum values of every declared parameter and body field), examples and fuzzing phases with a fixed seed and
a small example count per operation, plus the stateful phase (links: create, then read and change what was
created) for the system admin. Each run prints its duration.

The endless SSE feed cannot be fuzzed by schemathesis (it waits for the end of a body that never ends), so
a bounded check of its own connects with generated query strings and Last-Event-ID headers, reads the
first event and closes, as each role.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.fuzzenv import FuzzTarget, start_fuzz_target

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Routes left out of schemathesis, and why:
# - /api/v1/videos/events is an endless SSE stream (the fuzzer would wait for the end of the body);
#   _probe_sse below covers it in a bounded way.
EXCLUDED = ["/api/v1/videos/events"]
SSE_PATH = "/api/v1/videos/events"
EMPTY_FEED = (b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
              b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><id>urn:empty</id><title>empty</title>'
              b"<updated>2026-01-01T00:00:00Z</updated><opensearch:totalResults>0</opensearch:totalResults>"
              b"</feed>")


class _Catalog(BaseHTTPRequestHandler):
    """An empty upstream Kiwix catalog on loopback, so the upstream browse route has an answer offline."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(EMPTY_FEED)))
        self.end_headers()
        self.wfile.write(EMPTY_FEED)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def catalog() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catalog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _schema(url: str, token: str, dest: Path) -> Path:
    req = urllib.request.Request(url + "/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own loopback daemon
        dest.write_bytes(resp.read())
    return dest


def _sse_first_event(target: FuzzTarget, token: str | None, query: str,
                     last_event_id: str | None) -> tuple[int, str, bytes]:
    """Open the feed, read what the daemon sends first (or the whole refusal) and close: never the endless rest."""
    parts = urllib.parse.urlsplit(target.daemon.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    try:
        conn.request("GET", SSE_PATH + ("?" + query if query else ""), headers=headers)
        resp = conn.getresponse()
        kind = resp.getheader("Content-Type", "")
        first = resp.read1(4096) if kind.startswith("text/event-stream") else resp.read()
        return resp.status, kind, first
    finally:
        conn.close()


def _probe_sse(target: FuzzTarget, role: str) -> int:
    """The SSE feed, fuzzed in a bounded way: generated query strings and Last-Event-ID values, each
    connection reads the first event and closes. Staff get the stream (its retry line first); a learner and
    an anonymous caller get the error envelope. Returns how many connections were made."""
    token = target.tokens[role]
    made = 0

    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(query=st.dictionaries(text.filter(bool), text, max_size=3).map(urllib.parse.urlencode),
           last_event_id=st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40))
    def probe(query: str, last_event_id: str | None) -> None:
        nonlocal made
        made += 1
        status, kind, first = _sse_first_event(target, token, query, last_event_id)
        if role == "learner":
            assert status == 403 and kind.startswith("application/json"), (status, kind, first[:200])
            assert b'"error"' in first
        else:
            assert status == 200 and kind.startswith("text/event-stream"), (status, kind, first[:200])
            assert first.startswith(b"retry: "), first[:200]

    probe()
    status, kind, first = _sse_first_event(target, None, "", None)
    assert status == 401 and b'"error"' in first, (status, kind, first[:200])
    return made + 1


def _run(tmp_path: Path, catalog: str, role: str, *, examples: int, phases: str) -> None:
    started = time.monotonic()
    target = start_fuzz_target(tmp_path, f'[content]\nupstream_catalog_url = "{catalog}"\n')
    # the document is served to staff only: the learner run reads it with the system admin's token
    schema = _schema(target.daemon.url, target.tokens["system_admin"], tmp_path / "openapi.json")
    report = tmp_path / "report"
    args = [str(SCHEMATHESIS), "run", str(schema), "--url", target.daemon.url,
            "-H", f"Authorization: Bearer {target.tokens[role]}",
            "--checks", CHECKS + (",learner_stays_out_of_staff_routes" if role == "learner" else ""),
            "--include-path-regex", "^/(api|catalog)/", "--phases", phases, "-n", str(examples), "--seed", "20261206",
            "--no-shrink", "--workers", "2", "--request-timeout", "20", "--warnings", "off",
            "--report", "ndjson", "--report-dir", str(report)]
    for path in EXCLUDED:
        args += ["--exclude-path", path]
    repo = Path(__file__).resolve().parents[2]
    # run in tmp_path: schemathesis keeps a cache folder in its working directory
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.fuzzchecks", "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH", "")]))}
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env,  # noqa: S603
                            cwd=tmp_path, check=False)
    sse_connections = _probe_sse(target, role)
    log = target.daemon.output()
    target.daemon.stop(timeout=15)
    assert "unhandled error" not in log, log[-5000:]
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    summary = [line for line in result.stdout.splitlines() if "generated" in line or "(in " in line]
    print(f"fuzz as {role}: {time.monotonic() - started:.1f} s (daemon start, schemathesis {phases}, "
          f"{sse_connections} SSE connections); " + "; ".join(line.strip() for line in summary))


@pytest.mark.timeout(400)
def test_fuzz_as_system_admin(tmp_path: Path, catalog: str) -> None:
    _run(tmp_path, catalog, "system_admin", examples=15, phases="examples,coverage,fuzzing,stateful")


@pytest.mark.timeout(400)
def test_fuzz_as_learner(tmp_path: Path, catalog: str) -> None:
    _run(tmp_path, catalog, "learner", examples=5, phases="examples,coverage,fuzzing")
