"""The core's web.AppKeys (config, database, bus, clock, tasks, HTTP client, vault); each feature keeps its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from appliance.core.clock import Clock
from appliance.core.egress import EgressPolicy
from appliance.core.process import ProcessRole
from appliance.core.tasks import TaskSupervisor

if TYPE_CHECKING:
    from appliance.bus.client import Bus
    from appliance.bus.server import NatsServer
    from appliance.config import Config
    from appliance.core.vault import Vault
    from appliance.db.database import Database
    from appliance.web.policy import Principal
    from appliance.web.sites import ExtraSite



class SessionPrincipal(Protocol):
    """The live principal of a session by id: awaited (may read the database), or peeked from memory."""

    def __call__(self, session_id: int) -> Awaitable[Principal | None]: ...

    def cached(self, session_id: int) -> tuple[bool, Principal | None]:
        """(known, principal) from memory only: known is False when the answer would need a database read."""
        ...


Authenticator = Callable[[web.Request], Awaitable["Principal | None"]]

CONFIG: web.AppKey[Config] = web.AppKey("config")
ROLE = web.AppKey("role", ProcessRole)
CLOCK = web.AppKey("clock", Clock)
TASKS = web.AppKey("tasks", TaskSupervisor)
DB: web.AppKey[Database] = web.AppKey("db")
NATS_SERVER: web.AppKey[NatsServer | None] = web.AppKey("nats_server")
BUS: web.AppKey[Bus] = web.AppKey("bus")
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
# Secrets at rest (provider credentials, webhook signing secrets), one key for the whole appliance.
VAULT: web.AppKey[Vault] = web.AppKey("vault")
# The one egress policy (egress.allowed_networks); HTTP_CLIENT connects only through it.
EGRESS_POLICY = web.AppKey("egress_policy", EgressPolicy)
AUTHENTICATORS: web.AppKey[list[Authenticator]] = web.AppKey("authenticators")
MIDDLEWARES: web.AppKey[list[tuple[int, Any]]] = web.AppKey("middlewares")
# Callables run by the primary on SIGHUP (e.g. rescan the ZIM library).
RELOAD_HOOKS: web.AppKey[list[Callable[[], Awaitable[None]]]] = web.AppKey("reload_hooks")
# Called by the primary with the listening URL once serving (e.g. the --dev admin's one-time password).
STARTUP_NOTICES: web.AppKey[list[Callable[[str], None]]] = web.AppKey("startup_notices")
# Further listeners of every HTTP process (e.g. the content origin), registered by the features that serve them.
EXTRA_SITES: web.AppKey[list[ExtraSite]] = web.AppKey("extra_sites")
# The live principal of an application session, by session id (registered by the feature owning sessions):
# lets a second origin that never sees the session cookie check that the session behind its own credential
# still holds (not signed out, not deactivated, no password reset).
SESSION_PRINCIPAL: web.AppKey[SessionPrincipal] = web.AppKey("session_principal")
