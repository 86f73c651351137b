"""Every API route declares what it takes and what it answers, so the fuzzer exercises bodies and queries.

A route whose handler (or a helper it calls) reads a request body must declare that body's schema; one
that reads query parameters must declare each parameter it reads by name; every JSON route declares the
schema of its answer. The reads are found in the handler's source and, transitively, in the sources of
the appliance functions it calls, so a read hidden in a helper still counts.
"""

from __future__ import annotations

import inspect
import re
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appliance.app import create_app
from appliance.config import load_config
from appliance.core.process import ProcessRole
from appliance.web.openapi import JSON, _declared, document

# A body is read by these (read_json is the house way; the others read raw bodies, forms and uploads).
BODY_READS = re.compile(r"\bread_json\(|\brequest\.(?:json|post|multipart|read|text)\(\)|\brequest\.content\.read")
# Query parameters are read through .query / .rel_url.query, or by the shared pagination helper.
QUERY_READS = re.compile(r"\.query\b|\bpage_params\(|\.query_string\b")
# The names read: query.get("x"), query["x"], query.getall("x"), and the helpers that take a name.
QUERY_NAMES = re.compile(
    r"""(?:\b(?:query|q)(?:\.get|\.getone|\.getall)?(?:\(|\[)"""  # query.get("x"), q["x"]
    r"""|\b_?(?:int_param|_int|_date|_query)\(\s*\w+,\s*(?:\w+,\s*)?)"""  # _int(request, "x", ...)
    r"""["']([A-Za-z_][\w-]*)["']"""
)
# Calls worth following: a bare name or module.name, resolved in the function's globals.
CALLS = re.compile(r"\b(?:(\w+)\.)?(\w+)\(")
# Helpers that are the reads themselves (not followed: they would match every route)
LEAVES = {"read_json", "page_params", "_int_param"}
PAGE_NAMES = {"page", "per_page"}
FUZZED = ("/api/", "/catalog/")  # what tests/security/test_fuzz.py runs schemathesis against


def _app() -> web.Application:
    """The full app's routes (never started: nothing is written to the temporary folder's paths)."""
    with tempfile.TemporaryDirectory(prefix="declarations-") as folder:
        tmp = Path(folder)
        (tmp / "appliance.toml").write_text("")
        config = load_config(tmp / "appliance.toml", env={}, cwd=tmp, overrides={
            "paths": {"data_dir": str(tmp / "var"), "content_root": str(tmp / "content")}})
        return create_app(config, ProcessRole.PRIMARY)


def _unwrap(handler: Any) -> Callable[..., Any]:
    return inspect.unwrap(handler)


def _reached(func: Callable[..., Any], depth: int = 4, seen: set[int] | None = None) -> Iterator[tuple[str, str]]:
    """(name, source) of the function and the appliance functions it calls, transitively."""
    seen = set() if seen is None else seen
    func = _unwrap(func)
    if id(func) in seen or not getattr(func, "__module__", "").startswith("appliance."):
        return
    seen.add(id(func))
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return
    yield func.__qualname__, source
    if depth == 0:
        return
    scope = getattr(func, "__globals__", {})
    for match in CALLS.finditer(source):
        owner, name = match.groups()
        if name in LEAVES:
            continue
        target = scope.get(owner) if owner else scope.get(name)
        if owner:
            target = getattr(target, name, None) if inspect.ismodule(target) else None
        if inspect.isfunction(target):
            yield from _reached(target, depth - 1, seen)


def _api_routes() -> list[tuple[str, str, Any]]:
    app = _app()
    out = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method in ("HEAD", "*"):
            continue
        if resource.canonical.startswith(FUZZED):
            out.append((route.method, resource.canonical, route.handler))
    return out


ROUTES = _api_routes()


def _reads(handler: Any) -> tuple[bool, bool, set[str]]:
    body = query = False
    names: set[str] = set()
    for _name, source in _reached(handler):
        body = body or bool(BODY_READS.search(source))
        query = query or bool(QUERY_READS.search(source))
        names |= set(QUERY_NAMES.findall(source))
        if "page_params(" in source:
            names |= PAGE_NAMES
    return body, query, names


@pytest.mark.parametrize(("method", "path", "handler"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_route_declares_its_body_query_and_answer(method: str, path: str, handler: Any) -> None:
    declared = _declared(handler)
    assert declared, f"{method} {path}: no @spec(...) declaration"
    reads_body, reads_query, names = _reads(handler)
    if reads_body:
        assert declared.get("body") is not None, f"{method} {path} reads a body but declares no body schema"
    if reads_query:
        assert declared.get("query"), f"{method} {path} reads query parameters but declares none"
        missing = names - set(declared["query"])
        assert not missing, f"{method} {path} reads query parameters it does not declare: {sorted(missing)}"
    if declared.get("content_type", JSON) == JSON:
        assert declared.get("response") is not None, f"{method} {path}: no response schema"


def test_the_scan_sees_reads_in_helpers() -> None:
    """The detector itself: a body read two calls down and query names read by a helper are found."""
    by_name = {(m, p): h for m, p, h in ROUTES}
    body, _query, _names = _reads(by_name[("PATCH", "/api/v1/users/{id}")])
    assert body  # update_user -> read_json
    _body, query, names = _reads(by_name[("GET", "/api/v1/users")])
    assert query and {"facility_id", "role", "status", "q", "page", "per_page"} <= names  # via query_users
    _body, query, names = _reads(by_name[("GET", "/api/v1/reports/usage")])
    assert {"format", "report", "from", "to", "facility_id"} <= names  # via usage, _date and _scope
    body, query, _names = _reads(by_name[("GET", "/api/v1/auth/me")])
    assert not body and not query


def test_every_declared_schema_is_in_the_document() -> None:
    """What @spec declares reaches the document (query parameters, body and answer)."""
    doc = document(_app())
    for method, path, handler in ROUTES:
        declared = _declared(handler)
        op = doc["paths"][path][method.lower()]
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert params == set(declared.get("query", {})), (method, path)
        if declared.get("body") is not None:
            assert op["requestBody"]["content"][declared.get("body_type", JSON)]["schema"] == declared["body"]
