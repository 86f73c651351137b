"""CSV roster import: create or update users by username, all-or-nothing or row by row."""

import csv
import io
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web

from appliance.auth.accounts import (
    USER_COLUMNS,
    FieldError,
    NewUser,
    fetch_user_tx,
    insert_user_tx,
    update_user_tx,
    validate_fields,
)
from appliance.auth.audit import AuditAction, record_tx
from appliance.auth.keys import IDENTITY
from appliance.auth.passwords import generate_password, hash_password
from appliance.auth.principals import outranks
from appliance.auth.routes_users import ADMINS, check_grant
from appliance.auth.usernames import username_key
from appliance.auth.webutil import actor_of
from appliance.core.blocking import run_blocking
from appliance.core.errors import ApiError, bad_request, too_large
from appliance.keys import CLOCK, CONFIG, DB
from appliance.web.openapi import ANY, INT, STR, arr, obj, spec
from appliance.web.policy import Principal, Role, can_access_facility, principal, roles
from appliance.web.responses import ok

routes = web.RouteTableDef()
MAX_ROWS = 5000
COLUMNS = ("username", "first_name", "last_name", "email", "doc_id", "facility_id", "role", "password")


class ImportMode(StrEnum):
    """What happens to the good rows when some rows are bad."""

    ALL_OR_NOTHING = "all_or_nothing"
    PER_ROW = "per_row"


@dataclass
class Report:
    """What the import did, row by row."""

    mode: ImportMode
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    temporary_passwords: list[dict[str, str]] = field(default_factory=list)

    def error(self, row: int, username: str, exc: FieldError | ApiError) -> None:
        """Note a refused row."""
        if isinstance(exc, FieldError):
            self.errors.append({"row": row, "username": username, "field": exc.field, "message": exc.message})
        else:
            self.errors.append({"row": row, "username": username, "field": None, "message": exc.message})


def _parse(raw: bytes) -> list[dict[str, str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise bad_request("invalid_encoding", "the CSV must be UTF-8") from None
    if "\x00" in text:
        raise bad_request("invalid_csv", "the CSV holds NUL bytes")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in COLUMNS]
    if "username" not in header or unknown:
        raise bad_request(
            "invalid_csv", f"header must hold username and only {', '.join(COLUMNS)}", {"unknown_columns": unknown}
        )
    try:
        rows = []
        for row in reader:
            if len(rows) >= MAX_ROWS:
                raise bad_request("invalid_csv", f"at most {MAX_ROWS} rows per import")
            if None in row:
                raise bad_request("invalid_csv", f"row {reader.line_num} has more cells than the header")
            rows.append({k: (v or "").strip() for k, v in row.items()})
    except csv.Error as exc:
        raise bad_request("invalid_csv", f"the CSV cannot be read: {exc}") from None
    return rows


def _row_fields(row: dict[str, str], p: Principal) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in row.items() if v != "" or k in ("email", "doc_id")}
    if "facility_id" in data:
        if not data["facility_id"].isdigit() or len(data["facility_id"]) > 12:
            raise FieldError("facility_id", "must be an integer")
        data["facility_id"] = int(data["facility_id"])
    return data


async def _apply(
    tx: Any,
    now: str,
    p: Principal,
    request: web.Request,
    data: dict[str, Any],
    hashed: str | None,
    report: Report,
    temp: str | None,
) -> None:
    actor = actor_of(request, p)
    cur = await tx.execute(
        f"SELECT {USER_COLUMNS} FROM users WHERE username_key = ?",  # noqa: S608
        (username_key(data["username"]),),
    )
    existing = await cur.fetchone()
    if existing is None:
        fields = validate_fields({"role": "learner", "facility_id": p.facility_id, **data}, creating=True)
        fields.pop("password", None)
        new = NewUser(password_hash=hashed, must_change_password=temp is not None, **fields)
        await check_grant(tx, p, new.role, new.facility_id, new.extra_facility_ids)
        await insert_user_tx(tx, now, new, actor)
        report.created += 1
        if temp is not None:
            report.temporary_passwords.append({"username": new.username, "temporary_password": temp})
        return
    if not can_access_facility(p, existing["facility_id"]):
        raise ApiError(409, "username_taken", "this username is not available")
    if not outranks(p.role, Role(existing["role"])):
        raise ApiError(403, "forbidden", "you may not manage a user of your own or a higher role")
    changes = {k: v for k, v in data.items() if k not in ("username", "password")}
    fields = validate_fields(changes, creating=False)
    if "role" in fields or "facility_id" in fields:
        await check_grant(
            tx, p, fields.get("role", existing["role"]), fields.get("facility_id", existing["facility_id"]), []
        )
    before = await fetch_user_tx(tx, existing["id"])
    after = await update_user_tx(tx, now, before, fields, actor, request.app[IDENTITY].sessions)
    if tuple(after) == tuple(before):
        report.unchanged += 1
    else:
        report.updated += 1


@routes.post("/api/v1/users/import")
@roles(*ADMINS, facility_scoped=True)
@spec(body_type="text/csv", body={"type": "string"},
      query={"mode": {"type": "string", "enum": ["all_or_nothing", "per_row"]}},
      response=obj("mode", "applied", "created", "updated", "unchanged", "errors", "temporary_passwords",
                   mode=STR, applied={"const": True}, created=INT, updated=INT, unchanged=INT, errors=arr(ANY),
                   temporary_passwords=arr(obj())))
async def import_roster(request: web.Request) -> web.Response:
    """Body: CSV (text/csv). ?mode=all_or_nothing (default; 422 and nothing written on any error) or per_row."""
    p = principal(request)
    try:
        mode = ImportMode(request.query.get("mode", ImportMode.ALL_OR_NOTHING.value))
    except ValueError:
        raise bad_request(
            "invalid_parameter", "mode must be all_or_nothing or per_row", {"parameter": "mode"}
        ) from None
    limit = request.app[CONFIG].http.max_body_bytes
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise too_large(limit)
    report, applied = await run_import(request, p, raw, mode)
    return _answer(report, applied=applied)


async def run_import(request: web.Request, p: Principal, raw: bytes, mode: ImportMode) -> tuple[Report, bool]:
    """Import a roster CSV (the API and the staff page share it); returns the report and whether it was applied."""
    rows = _parse(raw)
    report = Report(mode)
    prepared: list[tuple[int, dict[str, Any], str | None, str | None]] = []
    for idx, row in enumerate(rows, start=2):  # row 1 is the header
        try:
            data = _row_fields(row, p)
            validate_fields({"role": "learner", **data}, creating=True)
        except FieldError as exc:
            report.error(idx, row.get("username", ""), exc)
            continue
        # Hash before the write transaction so it stays short (each hash costs ~30 ms).
        temp = None if data.get("password") else generate_password()
        hashed = await run_blocking("auth", hash_password, data.get("password") or temp)
        prepared.append((idx, data, hashed, temp))
    if mode is ImportMode.ALL_OR_NOTHING and report.errors:
        return report, False
    db, now = request.app[DB], request.app[CLOCK].iso_now()
    try:
        async with db.transaction() as tx:
            for idx, data, hashed, temp in prepared:
                await tx.execute("SAVEPOINT roster_row")
                try:
                    await _apply(tx, now, p, request, data, hashed, report, temp)
                    await tx.execute("RELEASE roster_row")
                except (FieldError, ApiError, sqlite3.IntegrityError) as exc:
                    await tx.execute("ROLLBACK TO roster_row")
                    await tx.execute("RELEASE roster_row")
                    err = exc if not isinstance(exc, sqlite3.IntegrityError) else ApiError(409, "conflict", "conflict")
                    report.error(idx, data.get("username", ""), err)
            if mode is ImportMode.ALL_OR_NOTHING and report.errors:
                raise _Rollback(report)
            await record_tx(
                tx,
                now,
                AuditAction.ROSTER_IMPORTED,
                actor_of(request, p),
                facility_id=p.facility_id,
                details={
                    "mode": mode.value,
                    "created": report.created,
                    "updated": report.updated,
                    "errors": len(report.errors),
                },
            )
    except _Rollback:
        return report, False
    return report, True


class _Rollback(ApiError):
    """Raised inside the transaction so it rolls back; rendered as the 422 report."""

    def __init__(self, report: Report) -> None:
        report.created = report.updated = report.unchanged = 0
        report.temporary_passwords = []
        super().__init__(
            422, "import_failed", "no row was imported because some rows are invalid", _body(report, applied=False)
        )


def _body(report: Report, *, applied: bool) -> dict[str, Any]:
    return {
        "mode": report.mode.value,
        "applied": applied,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "errors": report.errors,
        "temporary_passwords": report.temporary_passwords,
    }


def _answer(report: Report, *, applied: bool) -> web.Response:
    if not applied:
        raise ApiError(
            422, "import_failed", "no row was imported because some rows are invalid", _body(report, applied=False)
        )
    return ok(_body(report, applied=True))
