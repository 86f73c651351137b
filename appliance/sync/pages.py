"""What sync shows on pages: "my courses" on the learner home, provider health on the dashboard, and the
staff page /admin/providers (add per type, test, enable/disable, sync now, runs, unmatched users with link,
refused deliveries with retry), all through the API's own functions and permission rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.auth.usernames import username_key
from appliance.core.errors import ApiError, bad_request
from appliance.keys import DB
from appliance.sync import api_providers
from appliance.sync.api_courses import progress_rows
from appliance.sync.api_status import dead_letter_items, provider_status, recent_runs, retry_dead_letter_row
from appliance.web import i18n, templating
from appliance.web.i18n import N_
from appliance.web.messages import error_sentence
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles

TEMPLATES = Path(__file__).resolve().parent / "templates"
routes = web.RouteTableDef()
ADMINS = (Role.FACILITY_ADMIN, Role.DEPARTMENT_ADMIN)
UNMATCHED_SHOWN = 20
FORM_FIELDS = ("kind", "name", "base_url", "account_id", "facility_id")  # kept when the form comes back


@dataclass(frozen=True)
class Kind:
    """One choice of the "add" form: a provider type and the credential fields it takes."""

    key: str
    type: str
    label: str
    required: tuple[tuple[str, str], ...]
    optional: tuple[tuple[str, str], ...] = ()
    secret: frozenset[str] = frozenset()


# Field names are the API's credential keys; labels are what a staff member sees (translated on the page).
KINDS = (
    Kind("canvas_oss", "canvas_oss", N_("Canvas (self-hosted)"), (("access_token", N_("API access token")),),
         secret=frozenset({"access_token"})),
    Kind("canvas_cloud", "canvas_cloud", N_("Canvas (Instructure cloud)"),
         (("access_token", N_("API access token")),), secret=frozenset({"access_token"})),
    Kind("kolibri", "kolibri", N_("Kolibri"), (("username", N_("Facility admin username")),
                                               ("password", N_("Password"))),
         (("facility", N_("Kolibri facility id (32 hex digits, optional)")),), secret=frozenset({"password"})),
    Kind("brightspace_idkey", "brightspace", N_("Brightspace (ID key)"),
         (("app_id", N_("App ID")), ("app_key", N_("App key")), ("user_id", N_("User ID")),
          ("user_key", N_("User key"))), (("org_unit_id", N_("Org unit id (optional)")),),
         secret=frozenset({"app_key", "user_key"})),
    Kind("brightspace_oauth", "brightspace", N_("Brightspace (OAuth 2.0)"),
         (("client_id", N_("Client ID")), ("client_secret", N_("Client secret")),
          ("refresh_token", N_("Refresh token"))),
         (("org_unit_id", N_("Org unit id (optional)")), ("token_url", N_("Token URL (optional)"))),
         secret=frozenset({"client_secret", "refresh_token"})),
    Kind("moodle", "moodle", N_("Moodle"), (("token", N_("Web service token")),), secret=frozenset({"token"})),
)
KIND_BY_KEY = {k.key: k for k in KINDS}
TYPE_LABELS = {"canvas_oss": N_("Canvas (self-hosted)"), "canvas_cloud": N_("Canvas (Instructure cloud)"),
               "kolibri": N_("Kolibri"), "brightspace": N_("Brightspace"), "moodle": N_("Moodle")}

# What a failed connection test means, for a person (the API's classified reasons).
PROBE_SENTENCES = {
    "unreachable": N_("The learning system cannot be reached: the network is down, it timed out, or it answered "
                      "with a server error."),
    "refused_by_policy": N_("The appliance may not connect to this address: it is not in the allowed networks "
                            "(egress.allowed_networks)."),
    "auth_failed": N_("The learning system refused the credentials (wrong or expired, or without the "
                      "permissions the appliance needs)."),
    "unexpected_answer": N_("The learning system answered, but not the way this kind of learning system should. "
                            "Check the address and the type."),
}
PROBE_OK = N_("Connection works: the learning system is reachable and accepted the credentials.")


async def home_courses(request: web.Request, p: Principal) -> templating.Section | None:
    """The learner's courses with the progress last synced from the LMS (nothing when not enrolled)."""
    rows = await progress_rows(request.app[DB], p.user_id, 20, 0)
    if not rows:
        return None
    courses = [{"name": r["course_name"], "state": r["state"], "done": r["milestones_done"],
                "total": r["total_milestones"], "grade": r["grade"]} for r in rows]
    return templating.Section(30, "sync/home.html", {"courses": courses})


async def dashboard_providers(request: web.Request, p: Principal) -> templating.Section | None:
    """Each provider's uplink, queue depth and dead letters, as the sync status API reports them."""
    providers, unpublished = await provider_status(request.app, p)
    return templating.Section(10, "sync/dashboard.html", {"providers": providers, "unpublished": unpublished})


@routes.get("/admin/providers")
@roles(*ADMINS)
async def providers_page(request: web.Request) -> web.Response:
    """Each provider with its actions, the add form, recent runs and the deliveries it refused (with retry)."""
    return await _providers(request)



async def _providers(request: web.Request, *, error: str = "", status: int = 200, flash: str = "",
                     tested: dict[str, Any] | None = None, form: dict[str, str] | None = None) -> web.Response:
    p = principal(request)
    app = request.app
    providers, unpublished = await provider_status(app, p)
    letters = await dead_letter_items(app, p, "open")
    runs = (await recent_runs(app, p))[:20]
    for pr in providers:
        row = await api_providers.provider_for(app, p, pr["provider_id"])
        pr["unmatched"], pr["unmatched_total"] = await api_providers.unmatched_rows(app, row, UNMATCHED_SHOWN, 0)
    facilities = [dict(r) for r in await app[DB].fetchall("SELECT id, name FROM facilities ORDER BY name")
                  if can_access_facility(p, r["id"])]
    notices = {"retried": N_("Queued for another try."), "queued": N_("A sync run is queued."),
               "saved": N_("Saved."), "linked": N_("Linked to the local account.")}
    shown = request.query.get("done", "")
    if not flash and not error and shown in notices:
        flash = i18n.translate(request, notices[shown])
    return templating.render(request, "sync/admin_providers.html", {
        "providers": providers, "unpublished": unpublished, "letters": letters[:100], "letter_count": len(letters),
        "runs": runs, "error": error, "flash_kind": "ok", "flash": flash, "tested": tested,
        "kinds": KINDS, "type_labels": TYPE_LABELS, "facilities": facilities,
        "form": {**dict.fromkeys(FORM_FIELDS, ""), **(form or {})},
        "may_add": p.role is Role.SYSTEM_ADMIN,
        "may_change": p.role in (Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN)}, status=status)


def _done(what: str) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/admin/providers?done={what}"})


def _test_result(request: web.Request, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """A probe's answer as the page shows it: the sentence, and the API's reason for those who need it."""
    reason = result.get("reason")
    text = PROBE_SENTENCES.get(str(reason), PROBE_SENTENCES["unexpected_answer"]) if reason else PROBE_OK
    return {"name": name, "ok": reason is None, "reason": reason or "", "sentence": i18n.translate(request, text)}


def provider_body(form: Any) -> dict[str, Any]:
    """The API body of the "add" form: the chosen kind's credential fields only (blank optional ones left out)."""
    kind = KIND_BY_KEY.get(str(form.get("kind", "")))
    if kind is None:
        raise bad_request("invalid_field", "type: choose the kind of learning system", {"field": "type"})
    credentials = {key: str(form.get(f"{kind.key}.{key}", "")) for key, _ in kind.required}
    for key, _ in kind.optional:
        value = str(form.get(f"{kind.key}.{key}", "")).strip()
        if value:
            credentials[key] = value
    body: dict[str, Any] = {"type": kind.type, "name": str(form.get("name", "")),
                            "base_url": str(form.get("base_url", "")).strip(), "credentials": credentials}
    account = str(form.get("account_id", "")).strip()
    if account:
        body["account_id"] = account
    facility = str(form.get("facility_id", ""))
    body["facility_id"] = int(facility) if facility.isdigit() and len(facility) < 12 else None
    return body


@routes.post("/admin/providers")
@roles(Role.SYSTEM_ADMIN)
async def add_submit(request: web.Request) -> web.Response:
    """Add a provider (system admins: its address decides where the appliance sends tokens), then test it."""
    p = principal(request)
    form = await request.post()
    kept = {k: str(form.get(k, "")) for k in FORM_FIELDS}
    try:
        view = await api_providers.add_provider(request.app, p, provider_body(form))
        row = await api_providers.provider_for(request.app, p, int(view["id"]))
        result = await api_providers.probe_provider(request.app, row)
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status, form=kept)
    flash = i18n.translate(request, N_("Added “%(name)s”.")) % {"name": view["name"]}
    return await _providers(request, flash=flash, tested=_test_result(request, view["name"], result))


@routes.post(r"/admin/providers/{id:\d{1,12}}/test")
@roles(*ADMINS)
async def test_submit(request: web.Request) -> web.Response:
    """Test the connection now and say in a sentence what failed, if anything."""
    p = principal(request)
    try:
        row = await api_providers.provider_for(request.app, p, int(request.match_info["id"]))
        result = await api_providers.probe_provider(request.app, row)
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status)
    return await _providers(request, tested=_test_result(request, row["name"], result))


@routes.post(r"/admin/providers/{id:\d{1,12}}/state")
@roles(Role.DEPARTMENT_ADMIN)
async def state_submit(request: web.Request) -> web.Response:
    """Enable or disable a provider (a disabled one neither pulls nor pushes)."""
    p = principal(request)
    form = await request.post()
    try:
        row = await api_providers.provider_for(request.app, p, int(request.match_info["id"]))
        await api_providers.change_provider(request.app, p, row, {"state": str(form.get("state", ""))})
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status)
    return _done("saved")


@routes.post(r"/admin/providers/{id:\d{1,12}}/sync")
@roles(*ADMINS)
async def sync_submit(request: web.Request) -> web.Response:
    """Queue a pull now."""
    p = principal(request)
    try:
        row = await api_providers.provider_for(request.app, p, int(request.match_info["id"]))
        await api_providers.queue_run(request.app, row, "pull")
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status)
    return _done("queued")


@routes.post(r"/admin/providers/{id:\d{1,12}}/link")
@roles(*ADMINS, facility_scoped=True)
async def link_submit(request: web.Request) -> web.Response:
    """Link an unmatched upstream user to the local account with the username typed in."""
    p = principal(request)
    form = await request.post()
    username = str(form.get("username", "")).strip()
    try:
        row = await api_providers.provider_for(request.app, p, int(request.match_info["id"]))
        user_id = await request.app[DB].fetchval("SELECT id FROM users WHERE username_key = ?",
                                                 (username_key(username),)) if 0 < len(username) <= 150 else None
        if user_id is None:
            raise bad_request("invalid_field", "there is no local account with that username", {"field": "username"})
        await api_providers.link_external_user(request.app, p, row, str(form.get("external_id", "")), int(user_id))
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status)
    return _done("linked")


@routes.post(r"/admin/providers/dead-letters/{id:\d{1,12}}/retry")
@roles(*ADMINS)
async def retry_submit(request: web.Request) -> web.Response:
    """Queue a refused delivery for another push."""
    try:
        await retry_dead_letter_row(request.app, principal(request), int(request.match_info["id"]))
    except ApiError as exc:
        return await _providers(request, error=error_sentence(request, exc), status=exc.status)
    return _done("retried")


def setup(app: web.Application) -> None:
    """Register the sync sections and their templates."""
    templating.add_templates(app, TEMPLATES)
    templating.add_home_section(app, home_courses)
    templating.add_dashboard_section(app, dashboard_providers)
    app.router.add_routes(routes)
    templating.add_admin_page(app, 40, "/admin/providers", N_("Learning systems"),
                              N_("Add and test learning systems, sync now, link unmatched users,"
                                 " retry refused deliveries."))
