"""Command-line sub-commands of the sync feature: `appliance sync status|run|dead-letters|retry`."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.config import Config


async def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Per provider: state, uplink, queue depth, dead letters, last pull and push."""
    from appliance.db import open_database
    from appliance.sync import store

    async with open_database(config) as db:
        rows = await db.fetchall(f"SELECT {store.PROVIDER_COLUMNS} FROM providers ORDER BY id")
        if not rows:
            print("no providers")
        for row in rows:
            depth, oldest = await store.queue_depth(db, row["id"], row["outbox_floor"])
            dead = await db.fetchval("SELECT COUNT(*) FROM dead_letters WHERE provider_id = ? AND state != 'resolved'",
                                     (row["id"],))
            print(f"{row['id']:>3} {row['name']} ({row['type']}) state={row['state']} runtime={row['runtime_state']}"
                  f" uplink={row['uplink']} queue={depth} oldest={oldest or '-'} dead_letters={dead}"
                  f" last_pull={row['last_pull_at'] or '-'} last_push={row['last_push_at'] or '-'}")
            if row["last_error"]:
                print(f"    last error: {row['last_error']}")
        unpublished = await db.fetchval("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        print(f"outbox rows not yet relayed to JetStream: {unpublished}")
    return 0


async def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """Queue a pull or report run for the running daemon."""
    from appliance.db import open_database
    from appliance.sync.model import Job, Trigger
    from appliance.sync.scheduler import enqueue

    async with open_database(config) as db:
        state = await db.fetchval("SELECT state FROM providers WHERE id = ?", (args.provider,))
        if state is None:
            print(f"no provider {args.provider}")
            return 2
        if state != "enabled":
            print(f"provider {args.provider} is {state}")
            return 2
        run_id = await enqueue(db, args.provider, Job(args.job), Trigger.MANUAL, None)
        print(f"queued {args.job} run {run_id} (the running daemon executes it)")
    return 0


async def cmd_dead_letters(args: argparse.Namespace, config: Config) -> int:
    """List open dead letters with the upstream's error."""
    from appliance.db import open_database

    async with open_database(config) as db:
        rows = await db.fetchall("SELECT id, provider_id, outbox_id, topic, status_code, error, state, retries"
                                 " FROM dead_letters WHERE state != 'resolved' ORDER BY id")
        for row in rows:
            print(f"{row['id']:>5} provider={row['provider_id']} outbox={row['outbox_id']} {row['topic']}"
                  f" {row['status_code'] or '-'} {row['state']} retries={row['retries']}: {row['error']}")
        print(f"{len(rows)} dead letter(s)")
    return 0


async def cmd_retry(args: argparse.Namespace, config: Config) -> int:
    """Queue a dead letter (or all open ones) for another push."""
    from appliance.db import open_database

    async with open_database(config) as db:
        if args.id == "all":
            result = await db.execute("UPDATE dead_letters SET state = 'retrying', retries = retries + 1"
                                      " WHERE state = 'open'")
        elif args.id.isdigit():
            result = await db.execute("UPDATE dead_letters SET state = 'retrying', retries = retries + 1"
                                      " WHERE id = ? AND state = 'open'", (int(args.id),))
        else:
            print("give a dead-letter id or 'all'")
            return 2
        print(f"{result.rowcount} dead letter(s) queued for retry")
    return 0 if result.rowcount else 1


def register(sub: Any) -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
    sync = sub.add_parser("sync", help="store-and-forward sync with LMS providers")
    commands = sync.add_subparsers(dest="sync_command", required=True)
    commands.add_parser("status", help="providers, uplink, queue depth, dead letters").set_defaults(func=cmd_status)
    run = commands.add_parser("run", help="queue a pull (or report) run now")
    run.add_argument("provider", type=int)
    run.add_argument("--job", choices=["pull", "report"], default="pull")
    run.set_defaults(func=cmd_run)
    commands.add_parser("dead-letters", help="list records an upstream rejected").set_defaults(func=cmd_dead_letters)
    retry = commands.add_parser("retry", help="retry a dead letter by id, or 'all'")
    retry.add_argument("id")
    retry.set_defaults(func=cmd_retry)
