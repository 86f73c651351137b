"""Configuration section [sync]: store-and-forward sync with LMS providers."""

from dataclasses import dataclass

from appliance.core.settings import setting


def _cron(value: str) -> str | None:
    from appliance.sync.cron import Cron, CronError

    try:
        Cron.parse(value)
    except CronError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class SyncSettings:
    """[sync]: scheduler, uplink monitor, drain limits, leaf node."""

    enabled: bool = setting(True, help="run the sync engine (relay, pushes, pulls, scheduler) in the primary")
    pull_schedule: str = setting(
        "0 * * * *", help="cron expression (facility time) of the incremental pull per provider", check=_cron
    )
    report_schedule: str = setting(
        "0 3 * * *", help="cron expression (facility time) of the daily activity/grades report", check=_cron
    )
    scheduler_tick_s: float = setting(20.0, help="how often the scheduler looks for due windows", min=0.05)
    relay_interval_s: float = setting(
        0.5, help="how often the relay looks for unpublished outbox rows", min=0.01, max=60
    )
    relay_batch: int = setting(500, help="outbox rows published per relay round", min=1, max=10000)
    push_concurrency: int = setting(8, help="upstream requests in flight per provider while draining", min=1, max=64)
    push_batch: int = setting(256, help="queued records fetched from JetStream per round", min=1, max=1000)
    sis_batch_min: int = setting(
        100, help="new learners (or new enrollments) in one fetched batch sent to Canvas as one SIS import "
        "(0: always one by one)",
        min=0, max=1000,
    )
    ack_wait_s: float = setting(
        10.0, help="JetStream redelivers a record not acknowledged within this (records in flight at a crash "
        "wait this long after the restart)", min=1,
    )
    request_timeout_s: float = setting(30.0, help="timeout of one upstream request", min=0.1)
    probe_timeout_s: float = setting(5.0, help="timeout of the cheap uplink probe", min=0.1)
    probe_interval_s: float = setting(60.0, help="probe period while the uplink is up and idle", min=0.1)
    backoff_initial_s: float = setting(1.0, help="first wait before re-probing a down uplink", min=0.01)
    backoff_max_s: float = setting(300.0, help="longest wait between probes of a down uplink", min=0.01)
    throttle_floor: float = setting(100.0, help="slow down when Canvas X-Rate-Limit-Remaining falls under this", min=0)
    per_page: int = setting(100, help="page size asked of upstream list endpoints", min=1, max=1000)
    pull_analytics: bool = setting(False, help="also read per-student analytics in the daily report")
    stream_max_age_days: float = setting(
        30.0, help="how long queued records stay in the JetStream outbox stream", min=1
    )
    status_interval_s: float = setting(5.0, help="how often queue-depth metrics are refreshed", min=0.1)
