"""Wires the auth feature into the application: routes, cleanup contexts, middlewares."""

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from appliance.auth import (
    devadmin,
    pages,
    passwords,
    routes_admin,
    routes_roster,
    routes_saml,
    routes_session,
    routes_users,
)
from appliance.auth.authn import session_authenticator, token_authenticator
from appliance.auth.guards import GUARDS
from appliance.auth.keys import IDENTITY
from appliance.auth.metrics import SESSIONS_ACTIVE
from appliance.auth.principals import build_principal
from appliance.auth.saml import SamlServiceProvider
from appliance.auth.sessions import SessionById
from appliance.auth.state import IdentityState
from appliance.core.blocking import run_blocking
from appliance.core.clock import iso
from appliance.core.process import ProcessRole
from appliance.keys import AUTHENTICATORS, CLOCK, CONFIG, DB, ROLE, SESSION_PRINCIPAL, STARTUP_NOTICES, TASKS
from appliance.web.middlewares import add_guard
from appliance.web.policy import AuthVia

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 60


async def identity_ctx(app: web.Application) -> AsyncIterator[None]:
    """Build the identity state once the database is open; the primary runs housekeeping."""
    config = app[CONFIG]
    passwords.configure(config.auth.argon2_time_cost, config.auth.argon2_memory_kib)
    # Made now, so the first unknown-user sign-in does not pay for two hashes (and so stand out).
    await run_blocking("auth", passwords.dummy_hash)
    state = IdentityState.build(
        app[DB],
        app[CLOCK],
        config.auth,
        config.ldap,
        config.saml,
        trusted_proxies=config.http.trusted_proxies,
        secure_cookies=config.http.secure_cookies,
    )
    if config.saml.enabled:
        # Loading IdP metadata parses XML and may shell out to xmlsec1: keep it off the loop.
        state.saml = await run_blocking("io", SamlServiceProvider, config.saml)
    app[IDENTITY] = state
    # Lets the content origin, which never sees the session cookie, check that a reader's session still holds.
    by_id = SessionById(state.sessions, lambda db, user, sid: build_principal(db, user, AuthVia.SESSION, sid))
    app[SESSION_PRINCIPAL] = by_id
    app[TASKS].spawn("auth.session-revalidate", by_id.revalidate_loop)  # keeps reading off SQLite
    if app[ROLE] is ProcessRole.PRIMARY and config.dev:
        password = await devadmin.ensure_dev_admin(app[DB])
        if password:
            app[STARTUP_NOTICES].append(devadmin.announcer(password))
    if app[ROLE] is ProcessRole.PRIMARY:
        app[TASKS].spawn("auth.housekeeping", lambda: housekeeping(app))
    yield


async def housekeeping_once(app: web.Application) -> None:
    """Expire stale sessions, forget old ended ones, prune failures, locks and SAML state, refresh the gauge."""
    state, db, now = app[IDENTITY], app[DB], app[CLOCK].now()
    await state.sessions.expire_stale()
    await state.sessions.forget_ended()
    await state.lockouts.prune(now)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM saml_requests WHERE expires_at <= ?", (iso(now),))
        await tx.execute("DELETE FROM saml_assertions WHERE expires_at <= ?", (iso(now),))
    SESSIONS_ACTIVE.set(await state.sessions.count_active())


async def housekeeping(app: web.Application) -> None:
    """Run housekeeping_once every minute (the supervisor restarts it if it fails)."""
    while True:
        await housekeeping_once(app)
        await asyncio.sleep(HOUSEKEEPING_SECONDS)


def setup(app: web.Application) -> None:
    """Register the auth feature on the application."""
    app.cleanup_ctx.append(identity_ctx)
    for module in (routes_session, routes_users, routes_admin, routes_roster, routes_saml):
        app.router.add_routes(module.routes)
    # Tokens first: an explicit Authorization header wins over a cookie the browser sent along.
    app[AUTHENTICATORS].extend([token_authenticator, session_authenticator])
    for order, guard in GUARDS:
        add_guard(app, guard, order)
    pages.setup(app)
