"""Command-line sub-commands of the auth feature: `appliance user add|list|reset-password|deactivate|unlock`."""

from __future__ import annotations

import argparse
import getpass
import sqlite3
import sys
from datetime import timedelta
from typing import Any

from appliance.config import Config

ROLES = ("learner", "facility_admin", "department_admin", "system_admin")


def _actor() -> Any:
    from appliance.auth.audit import Actor

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(None, f"cli:{who}", "")


def _sessions(db: Any, config: Config) -> Any:
    from appliance.auth.sessions import Sessions
    from appliance.core.clock import Clock

    return Sessions(
        db,
        Clock(),
        timedelta(minutes=config.auth.session_idle_minutes),
        timedelta(hours=config.auth.session_absolute_hours),
    )


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """Create an account; the password comes from stdin, or a one-time one is generated and printed."""
    from appliance.auth import passwords
    from appliance.auth.accounts import FieldError, NewUser, facilities_exist_tx, insert_user_tx, validate_fields
    from appliance.bootstrap import ensure_defaults
    from appliance.core.blocking import run_blocking
    from appliance.core.clock import Clock
    from appliance.db import open_database

    data: dict[str, Any] = {
        "username": args.username,
        "role": args.role,
        "facility_id": args.facility,
        "first_name": args.first_name,
        "last_name": args.last_name,
    }
    if args.email:
        data["email"] = args.email
    if args.doc_id:
        data["doc_id"] = args.doc_id
    if args.password_stdin:
        data["password"] = sys.stdin.readline().rstrip("\r\n")
    try:
        fields = validate_fields(data, creating=True)
    except FieldError as exc:
        print(f"refused: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    password = fields.pop("password", None)
    temporary = password is None
    password = password or passwords.generate_password()
    passwords.configure(config.auth.argon2_time_cost, config.auth.argon2_memory_kib)
    hashed = await run_blocking("auth", passwords.hash_password, password)
    async with open_database(config) as db:
        await ensure_defaults(db)
        try:
            async with db.transaction() as tx:
                if await facilities_exist_tx(tx, [fields["facility_id"]]):
                    print(f"refused: facility {fields['facility_id']} does not exist", file=sys.stderr)
                    return 2
                row = await insert_user_tx(
                    tx,
                    Clock().iso_now(),
                    NewUser(password_hash=hashed, must_change_password=temporary, **fields),
                    _actor(),
                )
        except sqlite3.IntegrityError:
            print(f"refused: username {fields['username']!r} is taken", file=sys.stderr)
            return 1
    print(f"created {row['role']} {row['username']} (id {row['id']}, facility {row['facility_id']})")
    if temporary:
        print(f"one-time password: {password}   (must be changed at first sign-in)")
    return 0


async def _find(db: Any, username: str) -> Any:
    from appliance.auth.accounts import USER_COLUMNS
    from appliance.auth.usernames import username_key

    return await db.fetchone(
        f"SELECT {USER_COLUMNS} FROM users WHERE username_key = ?",  # noqa: S608
        (username_key(username),),
    )


async def cmd_reset(args: argparse.Namespace, config: Config) -> int:
    """Give a local account a temporary password (printed once) and end its sessions."""
    from appliance.auth import passwords
    from appliance.auth.accounts import set_password_tx
    from appliance.auth.lockout import LockKind
    from appliance.auth.usernames import username_key
    from appliance.core.blocking import run_blocking
    from appliance.core.clock import Clock
    from appliance.db import open_database

    async with open_database(config) as db:
        user = await _find(db, args.username)
        if user is None or user["auth_source"] != "local":
            print("refused: no local account with that username", file=sys.stderr)
            return 1
        temporary = passwords.generate_password()
        passwords.configure(config.auth.argon2_time_cost, config.auth.argon2_memory_kib)
        hashed = await run_blocking("auth", passwords.hash_password, temporary)
        async with db.transaction() as tx:
            await set_password_tx(
                tx, Clock().iso_now(), user, hashed, temporary=True, actor=_actor(), sessions=_sessions(db, config)
            )
            # An admin reset also lifts the username's lockout, as in the API.
            await tx.execute(
                "DELETE FROM lockouts WHERE kind = ? AND subject = ?",
                (LockKind.USERNAME.value, username_key(user["username"])),
            )
    print(f"one-time password for {user['username']}: {temporary}   (must be changed at next sign-in)")
    return 0


async def cmd_deactivate(args: argparse.Namespace, config: Config) -> int:
    """Deactivate an account and end its sessions."""
    from appliance.auth.accounts import deactivate_user_tx, fetch_user_tx
    from appliance.core.clock import Clock
    from appliance.db import open_database

    async with open_database(config) as db:
        user = await _find(db, args.username)
        if user is None:
            print("refused: no such user", file=sys.stderr)
            return 1
        async with db.transaction() as tx:
            before = await fetch_user_tx(tx, user["id"])
            if before["deactivated_at"] is None:
                await deactivate_user_tx(tx, Clock().iso_now(), before, _actor(), _sessions(db, config))
    print(f"deactivated {user['username']}")
    return 0


async def cmd_unlock(args: argparse.Namespace, config: Config) -> int:
    """Lift a lockout of a username and/or a client address."""
    from appliance.auth.usernames import username_key
    from appliance.db import open_database

    async with open_database(config) as db, db.transaction() as tx:
        if args.username:
            await tx.execute(
                "DELETE FROM lockouts WHERE kind = 'username' AND subject = ?", (username_key(args.username),)
            )
            await tx.execute(
                "DELETE FROM login_failures WHERE kind = 'username' AND subject = ?", (username_key(args.username),)
            )
        if args.address:
            await tx.execute("DELETE FROM lockouts WHERE kind = 'address' AND subject = ?", (args.address,))
            await tx.execute("DELETE FROM login_failures WHERE kind = 'address' AND subject = ?", (args.address,))
    print("unlocked")
    return 0


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """Print accounts, one per line."""
    from appliance.db import open_database

    where, params = ("WHERE facility_id = ?", (args.facility,)) if args.facility else ("", ())
    async with open_database(config) as db:
        rows = await db.fetchall(
            f"SELECT id, username, role, facility_id, auth_source, deactivated_at FROM users {where}"  # noqa: S608
            " ORDER BY username_key",
            params,
        )
    for r in rows:
        status = "deactivated" if r["deactivated_at"] else "active"
        print(f"{r['id']}\t{r['username']}\t{r['role']}\tfacility {r['facility_id']}\t{r['auth_source']}\t{status}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
    user = sub.add_parser("user", help="manage accounts from the shell")
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = cmds.add_parser("add", help="create an account")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--facility", type=int, default=1, help="facility id (default 1)")
    add.add_argument("--first-name", default="")
    add.add_argument("--last-name", default="")
    add.add_argument("--email", default="")
    add.add_argument("--doc-id", default="")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else a one-time one is printed)",
    )
    add.set_defaults(func=cmd_add)
    listing = cmds.add_parser("list", help="list accounts")
    listing.add_argument("--facility", type=int, default=None)
    listing.set_defaults(func=cmd_list)
    reset = cmds.add_parser("reset-password", help="issue a one-time password (printed once)")
    reset.add_argument("--username", required=True)
    reset.set_defaults(func=cmd_reset)
    deactivate = cmds.add_parser("deactivate", help="deactivate an account and end its sessions")
    deactivate.add_argument("--username", required=True)
    deactivate.set_defaults(func=cmd_deactivate)
    unlock = cmds.add_parser("unlock", help="lift a sign-in lockout")
    unlock.add_argument("--username", default=None)
    unlock.add_argument("--address", default=None)
    unlock.set_defaults(func=cmd_unlock)
