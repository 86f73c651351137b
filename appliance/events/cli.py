"""Command-line sub-command of the events feature: `appliance webhooks status`."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.config import Config


async def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Per webhook: URL, enabled, failure streak and deliveries by state; events not yet relayed."""
    from appliance.db import open_database

    async with open_database(config) as db:
        rows = await db.fetchall(
            "SELECT w.id, w.url, w.enabled, w.failure_count, w.disabled_reason,"
            " SUM(d.state = 'pending') AS pending, SUM(d.state = 'succeeded') AS succeeded,"
            " SUM(d.state = 'failed') AS failed FROM webhooks w LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id"
            " GROUP BY w.id ORDER BY w.id"
        )
        if not rows:
            print("no webhooks")
        for row in rows:
            state = "enabled" if row["enabled"] else f"disabled ({row['disabled_reason'] or 'by an admin'})"
            print(f"{row['id']:>3} {row['url']} {state} failures={row['failure_count']}"
                  f" pending={row['pending'] or 0} succeeded={row['succeeded'] or 0} failed={row['failed'] or 0}")
        unpublished = await db.fetchval("SELECT COUNT(*) FROM events WHERE published_at IS NULL")
        print(f"events not yet relayed to JetStream: {unpublished}")
    return 0


def register(sub: Any) -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
    hooks = sub.add_parser("webhooks", help="domain events and webhook deliveries")
    commands = hooks.add_subparsers(dest="webhooks_command", required=True)
    commands.add_parser("status", help="webhooks, failure streaks, deliveries by state").set_defaults(func=cmd_status)
