"""Identity metrics (bounded labels only: results, kinds and buckets, never a user)."""

from prometheus_client import Counter, Gauge

SESSIONS_ACTIVE = Gauge(
    "appliance_auth_sessions_active",
    "Sessions live now (refreshed by the primary every minute)",
    multiprocess_mode="max",
)
SIGN_INS = Counter(
    "appliance_auth_sign_ins_total",
    "Sign-in attempts by method and result",
    ["method", "result"],
)
LOCKOUTS = Counter("appliance_auth_lockouts_total", "Lockouts started, by what was locked", ["kind"])
RATE_LIMITED = Counter(
    "appliance_auth_rate_limited_total",
    "Requests refused with 429 by a token bucket",
    ["bucket"],
)
