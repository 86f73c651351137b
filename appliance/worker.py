"""Entry point of an HTTP worker process (`python -m appliance.worker`), started by the primary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the primary's hand-over arguments and serve HTTP until SIGTERM."""
    parser = argparse.ArgumentParser(prog="appliance.worker")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bus-url", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--site", action="append", default=[], help="name=port of an extra site to bind")
    parser.add_argument("--handoff", action="append", default=[],
                        help="name=fd: the channel a packed site's connections arrive on")
    args = parser.parse_args(argv)
    sites = {}
    for item in args.site:
        name, _, port = item.partition("=")
        sites[name] = int(port)
    handoffs = {}
    for item in args.handoff:
        name, _, fd = item.partition("=")
        handoffs[name] = int(fd)
    os.environ["APPLIANCE_PROCESS_ROLE"] = "worker"
    from appliance.config import ConfigError, load_config

    try:
        config = load_config(args.config, dev=args.dev)
    except ConfigError as exc:
        print(f"appliance worker: config error: {exc}", file=sys.stderr)
        return 2
    from appliance.core import eventloop
    from appliance.observability.logging import configure_logging
    from appliance.server import exit_now, run_worker

    configure_logging(config.logging.level, config.logging.format, dev=config.dev)
    serving = run_worker(config, args.host, args.port, args.bus_url, sites, handoffs)
    code = eventloop.run(serving, config.http.event_loop)
    if code:
        exit_now(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
