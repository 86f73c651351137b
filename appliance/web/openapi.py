"""An OpenAPI 3.1 document generated from the route declarations, served at /api/v1/openapi.json.

Nothing is written by hand twice: paths, methods and path parameters (with their patterns) come from the
router, the access policy from each handler's `@public/@signed_in/@roles` declaration (as `x-policy` and
`security`), the summary from the handler's docstring, and request and response schemas from an optional
`@spec(...)` on the handler. Every /api/ route appears, declared or not; a test fails if one is missing.

Undeclared parts get the house conventions: JSON bodies are objects, successes are the `{"data", "meta"}`
envelope and every failure is the `{"error": {"code", "message", "details"}}` envelope.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from appliance.web.policy import ADMIN_ROLES, Access, Policy, policy_of, roles

SPEC_ATTR = "__appliance_openapi__"
H = TypeVar("H", bound=Callable[..., Any])
_PARAM = re.compile(r"\{(?P<name>\w+)(?::(?P<regex>(?:[^{}]|\{[^{}]*\})+))?\}")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
JSON = "application/json"

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {}, "meta": {"type": "object"}},
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "details": {"type": ["object", "null"]}},
    }},
}
PAGE_QUERY: dict[str, dict[str, Any]] = {
    "page": {"type": "integer", "minimum": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 500},
}


# Small builders for the schemas the @spec declarations use (JSON Schema 2020-12, as OpenAPI 3.1 reads it).
INT: dict[str, Any] = {"type": "integer"}
ID: dict[str, Any] = {"type": "integer", "minimum": 1}
STR: dict[str, Any] = {"type": "string"}
NUM: dict[str, Any] = {"type": "number"}
BOOL: dict[str, Any] = {"type": "boolean"}
ANY: dict[str, Any] = {}
TIME: dict[str, Any] = {"type": "string", "minLength": 1}
"""A time as the API writes it (ISO 8601 text)."""


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema, or null."""
    return {"anyOf": [dict(schema), {"type": "null"}]}


def obj(*required: str, **properties: Mapping[str, Any]) -> dict[str, Any]:
    """An object with these properties, the named ones required (others may appear)."""
    out: dict[str, Any] = {"type": "object", "properties": {k: dict(v) for k, v in properties.items()}}
    if required:
        out["required"] = list(required)
    return out


def arr(items: Mapping[str, Any]) -> dict[str, Any]:
    """An array of items of this schema."""
    return {"type": "array", "items": dict(items)}


def text(max_length: int | None = None, min_length: int = 0) -> dict[str, Any]:
    """A string, bounded."""
    out: dict[str, Any] = {"type": "string"}
    if min_length:
        out["minLength"] = min_length
    if max_length is not None:
        out["maxLength"] = max_length
    return out


ID_QUERY: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{1,12}$"}
"""A query parameter that names a row by its integer id."""


def spec(*, query: Mapping[str, Mapping[str, Any]] | None = None, body: Mapping[str, Any] | None = None,
         body_type: str = JSON, response: Mapping[str, Any] | None = None, status: int = 200,
         content_type: str | None = JSON, envelope: bool = True, tags: tuple[str, ...] = (),
         links: Mapping[str, tuple[str, str, str]] | None = None,
         alternatives: Mapping[str, Mapping[str, Any]] | None = None) -> Callable[[H], H]:
    """Declare what the OpenAPI document says of a handler: query parameters (name → JSON schema), the body
    schema and its media type, the success status, its media type (None: no body) and the schema of `data`
    in it (or, with envelope=False, of the whole answer). `links` names follow-up operations for stateful
    testing: {name: (method, path template, JSON pointer of the id in this answer's body)}. `alternatives`
    are other media types the same success may come in (a CSV export beside JSON): {media type: schema}."""
    declared = {"query": dict(query or {}), "body": body, "body_type": body_type, "response": response,
                "status": status, "content_type": content_type, "envelope": envelope, "tags": tags,
                "links": dict(links or {}), "alternatives": dict(alternatives or {})}

    def decorate(handler: H) -> H:
        setattr(handler, SPEC_ATTR, declared)
        return handler

    return decorate


def _declared(handler: Any) -> dict[str, Any]:
    target = handler
    for _ in range(3):
        found = getattr(target, SPEC_ATTR, None)
        if found is not None:
            return found
        target = getattr(target, "__wrapped__", None) or getattr(target, "__func__", None)
        if target is None:
            break
    return {}


def _path_and_params(resource: web.AbstractResource) -> tuple[str, list[dict[str, Any]]]:
    original = getattr(resource, "_orig_path", None) or resource.canonical
    params = []
    for match in _PARAM.finditer(original):
        schema: dict[str, Any] = {"type": "string"}
        if match["regex"]:
            schema["pattern"] = f"^(?:{match['regex']})$"
        else:
            schema["pattern"] = "^[^/{}]+$"
        params.append({"name": match["name"], "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(lambda m: "{" + m["name"] + "}", original), params


def _policy_fields(policy: Policy | None) -> dict[str, Any]:
    if policy is None:
        return {"x-policy": "denied (undeclared)"}
    out: dict[str, Any] = {"x-policy": policy.describe()}
    if policy.access is Access.PUBLIC:
        out["security"] = [{}, {"session": []}, {"token": []}]
    else:
        out["security"] = [{"session": []}, {"token": []}]
    if policy.access is Access.ROLES:
        out["x-roles"] = sorted(r.value for r in policy.roles)
    return out


def _summary(handler: Any) -> str:
    doc = (getattr(handler, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _operation(method: str, path: str, handler: Any, params: list[dict[str, Any]]) -> dict[str, Any]:
    declared = _declared(handler)
    op: dict[str, Any] = {
        "operationId": operation_id(method, path),
        "summary": _summary(handler),
        **_policy_fields(policy_of(handler)),
    }
    if declared.get("tags"):
        op["tags"] = list(declared["tags"])
    query = [{"name": name, "in": "query", "required": False, "schema": dict(schema)}
             for name, schema in declared.get("query", {}).items()]
    if params or query:
        op["parameters"] = [*params, *query]
    if method in ("post", "put", "patch") or declared.get("body") is not None:  # a DELETE may take a body too
        body_type = declared.get("body_type", JSON)
        body = declared.get("body") or ({"type": "object"} if body_type == JSON else {"type": "string"})
        op["requestBody"] = {"required": method != "post" or declared.get("body") is not None,
                             "content": {body_type: {"schema": body}}}
    status = str(declared.get("status", 200))
    content_type = declared.get("content_type", JSON)
    success_content: dict[str, Any]
    if content_type is None:
        success_content = {}
    elif content_type == JSON and not declared.get("envelope", True):
        success_content = {JSON: {"schema": declared.get("response") or {"type": "object"}}}
    elif content_type == JSON:
        success = {**ENVELOPE, "properties": {**ENVELOPE["properties"], "data": declared.get("response") or {}}}
        success_content = {JSON: {"schema": success}}
    else:
        success_content = {content_type: {"schema": {}}}
    for media_type, schema in declared.get("alternatives", {}).items():
        success_content[media_type] = {"schema": dict(schema)}
    op["responses"] = {
        status: {"description": "success", **({"content": success_content} if success_content else {})},
        "default": {"description": "an error, in the error envelope", "content": {JSON: {"schema": ERROR}}},
    }
    if content_type == JSON and declared.get("envelope", True) and status != "2XX":
        # other successes (a 201 beside a 200) are still the envelope
        op["responses"]["2XX"] = {"description": "success", "content": {JSON: {"schema": ENVELOPE}}}
    links = {name: {"operationId": operation_id(method_, path_), "parameters": {"id": f"$response.body#{pointer}"}}
             for name, (method_, path_, pointer) in declared.get("links", {}).items()}
    if links:
        op["responses"][status]["links"] = links
    return op


def operation_id(method: str, path: str) -> str:
    """The operationId of a method and path template (stable, derived, unique per operation)."""
    return f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}"


def document(app: web.Application, *, api_only: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every routed handler of this app (static files left out)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        method = route.method.lower()
        if method not in _METHODS:
            continue
        path, params = _path_and_params(resource)
        if api_only and not path.startswith("/api/"):
            continue
        entry = paths.setdefault(path, {})
        if method == "head" and "get" in entry:
            continue  # aiohttp adds HEAD beside every GET; it is implied
        entry[method] = _operation(method, path, route.handler, params)
    for entry in paths.values():
        entry.pop("head", None) if "get" in entry else None
    return {
        "openapi": "3.1.0",
        "info": {"title": "appliance API", "version": "1",
                 "description": "Generated from the route declarations of this appliance."},
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "appliance_session"},
            "token": {"type": "http", "scheme": "bearer"},
        }},
    }


_CACHE = web.AppKey("openapi_document", dict)


@roles(*ADMIN_ROLES)
@spec(envelope=False, response={"type": "object", "required": ["openapi", "paths"]})
async def serve(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this appliance's API (staff only)."""
    found = request.app.get(_CACHE)
    if found is None:
        found = document(request.app)
    return web.json_response(found, headers={"Cache-Control": "private, no-cache"})


def setup(app: web.Application) -> None:
    """Serve the document at /api/v1/openapi.json."""
    app.router.add_get("/api/v1/openapi.json", serve)
