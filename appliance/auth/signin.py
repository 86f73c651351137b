"""The sign-in decision: lockout, local password or directory, same answer for every kind of failure."""

import logging
from typing import Any

from appliance.auth.accounts import USER_COLUMNS, NewUser, fetch_user_tx, insert_user_tx, update_user_tx
from appliance.auth.audit import Actor, AuditAction, record, record_tx
from appliance.auth.external import ExternalProfile
from appliance.auth.ldap import LdapOutcome
from appliance.auth.lockout import LockKind
from appliance.auth.metrics import LOCKOUTS, SIGN_INS
from appliance.auth.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from appliance.auth.sessions import AuthMethod
from appliance.auth.state import IdentityState
from appliance.auth.usernames import username_key
from appliance.core.blocking import run_blocking
from appliance.core.clock import Clock, iso
from appliance.core.errors import ApiError, unavailable
from appliance.db.database import Database

log = logging.getLogger(__name__)
INVALID_MESSAGE = "wrong username or password"


def invalid_credentials() -> ApiError:
    """The one answer for unknown user, wrong password, deactivated or unusable account."""
    return ApiError(401, "invalid_credentials", INVALID_MESSAGE)


def locked(retry_after: int) -> ApiError:
    """Too many failures for this username or address (said the same way for unknown usernames)."""
    return ApiError(
        429, "account_locked", "too many failed sign-ins; try again later", headers={"Retry-After": str(retry_after)}
    )


class SignIn:
    """One sign-in attempt's collaborators."""

    def __init__(self, db: Database, clock: Clock, state: IdentityState) -> None:
        self.db = db
        self.clock = clock
        self.state = state

    async def password(self, username: str, password: str, addr: str) -> tuple[Any, AuthMethod]:
        """Check a username and password; return (users row, method) or raise the one refusal."""
        key = username_key(username)
        subjects = {LockKind.USERNAME: key, LockKind.ADDRESS: addr}
        wait = await self.state.lockouts.locked_for(subjects, self.clock.now())
        if wait:
            SIGN_INS.labels("password", "locked").inc()
            raise locked(wait)
        row = await self.db.fetchone(
            f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE username_key = ?",
            (key,),  # noqa: S608
        )
        directory = self.state.ldap
        if row is not None and row["auth_source"] == "local":
            ok = await run_blocking("auth", verify_password, row["password_hash"], password)
            if ok and row["deactivated_at"] is None:
                await self._maybe_rehash(row, password)
                return row, AuthMethod.PASSWORD
            return await self._fail(row, username, subjects, "password", "deactivated" if ok else "bad_password")
        if directory is not None and (row is None or row["auth_source"] == "ldap"):
            result = await run_blocking("ldap", directory.authenticate, username, password)
            if result.outcome is LdapOutcome.UNAVAILABLE:
                SIGN_INS.labels("ldap", "unavailable").inc()
                raise unavailable(
                    "the directory (LDAP) cannot be reached; local accounts still work",
                    retry_after=30,
                    code="directory_unavailable",
                )
            if result.outcome is LdapOutcome.OK and result.profile is not None:
                user = await self.upsert_external(result.profile, Actor(None, "ldap", addr))
                if user is not None:
                    return user, AuthMethod.LDAP
                return await self._fail(row, username, subjects, "ldap", "refused")
            if result.outcome is LdapOutcome.UNKNOWN_USER:
                # Spend what a bind would have cost, so "no such person" is not faster than "wrong password".
                await run_blocking("auth", verify_password, await self._dummy(), password)
            return await self._fail(row, username, subjects, "ldap", result.outcome.value)
        # Unknown (or SAML-only) account: verify against a dummy hash so the timing matches a real check.
        await run_blocking("auth", verify_password, await self._dummy(), password)
        return await self._fail(row, username, subjects, "password", "unknown_user" if row is None else "no_password")

    async def _dummy(self) -> str:
        return await run_blocking("auth", dummy_hash)

    async def _maybe_rehash(self, row: Any, password: str) -> None:
        if needs_rehash(row["password_hash"]):
            new_hash = await run_blocking("auth", hash_password, password)
            await self.db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new_hash, row["id"], row["password_hash"]),
            )

    async def _fail(self, row: Any, typed: str, subjects: dict[LockKind, str], method: str, why: str) -> Any:
        now = self.clock.now()
        SIGN_INS.labels(method, "failure").inc()
        newly = await self.state.lockouts.record_failure(subjects, now)
        actor = Actor(None, typed[:64], subjects[LockKind.ADDRESS])
        target = {
            "target_id": row["id"] if row is not None else None,
            "target_name": row["username"] if row is not None else typed[:64],
            "facility_id": row["facility_id"] if row is not None else None,
        }
        await record(self.db, iso(now), AuditAction.SIGN_IN_FAILED, actor, **target, details={"reason": why})
        for kind in newly:
            LOCKOUTS.labels(kind.value).inc()
            await record(self.db, iso(now), AuditAction.ACCOUNT_LOCKED, actor, **target, details={"kind": kind.value})
        raise invalid_credentials()

    async def succeeded(
        self, user: Any, method: AuthMethod, addr: str, user_agent: str, replaces: str | None
    ) -> tuple[str, str]:
        """Start the session and audit the success in one write; forget the username's failures."""
        await self.state.lockouts.clear(LockKind.USERNAME, username_key(user["username"]))
        SIGN_INS.labels(method.value, "success").inc()
        async with self.db.transaction() as tx:
            token, csrf, _ = await self.state.sessions.create_tx(
                tx, user["id"], method, addr, user_agent, replaces=replaces
            )
            await record_tx(
                tx,
                self.clock.iso_now(),
                AuditAction.SIGN_IN_SUCCEEDED,
                Actor(user["id"], user["username"], addr),
                target_id=user["id"],
                target_name=user["username"],
                facility_id=user["facility_id"],
                details={"method": method.value},
            )
        return token, csrf

    async def upsert_external(self, profile: ExternalProfile, actor: Actor) -> Any | None:
        """Find or create the local account of a directory/IdP identity; None when it must be refused."""
        now = self.clock.iso_now()
        key = username_key(profile.username)
        async with self.db.transaction() as tx:
            marks = ",".join("?" * len(profile.facility_ids))
            cur = await tx.execute(
                f"SELECT id FROM facilities WHERE id IN ({marks})",  # noqa: S608
                profile.facility_ids,
            )
            known = {r[0] for r in await cur.fetchall()}
            facilities = [f for f in profile.facility_ids if f in known]
            if not facilities:
                log.warning("%s sign-in of %r refused: mapped facility does not exist", profile.source, key)
                return None
            cur = await tx.execute("SELECT id, auth_source, deactivated_at FROM users WHERE username_key = ?", (key,))
            found = await cur.fetchone()
            if found is None:
                new = NewUser(
                    username=profile.username,
                    role=profile.role,
                    facility_id=facilities[0],
                    first_name=profile.first_name,
                    last_name=profile.last_name,
                    email=profile.email,
                    doc_id=profile.doc_id,
                    auth_source=profile.source.value,
                    extra_facility_ids=facilities[1:],
                )
                return await insert_user_tx(tx, now, new, actor)
            if found["auth_source"] != profile.source.value or found["deactivated_at"] is not None:
                # Never let a directory or IdP take over a local account of the same name.
                log.warning(
                    "%s sign-in of %r refused: account is %s%s",
                    profile.source,
                    key,
                    found["auth_source"],
                    " and deactivated" if found["deactivated_at"] else "",
                )
                return None
            before = await fetch_user_tx(tx, found["id"])
            changes: dict[str, Any] = {
                "first_name": profile.first_name,
                "last_name": profile.last_name,
                "email": profile.email,
                "doc_id": profile.doc_id,
                "role": profile.role,
                "facility_id": facilities[0],
            }
            if profile.role == "department_admin":
                changes["extra_facility_ids"] = facilities[1:]
            return await update_user_tx(tx, now, before, changes, actor, self.state.sessions)


async def audit_sign_out(db: Database, clock: Clock, user_id: int, username: str, facility_id: int, addr: str) -> None:
    """Audit a sign-out."""
    async with db.transaction() as tx:
        await record_tx(
            tx,
            clock.iso_now(),
            AuditAction.SIGNED_OUT,
            Actor(user_id, username, addr),
            target_id=user_id,
            target_name=username,
            facility_id=facility_id,
        )
