"""The `appliance` command: serve, migrate, check-config, doctor, and each feature's sub-commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from appliance.config import Config, ConfigError, describe, load_config
from appliance.core import eventloop

ROLE_ENV = "APPLIANCE_PROCESS_ROLE"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None,
                        help="TOML config (default ./appliance.toml, then /etc/appliance/appliance.toml)")
    common.add_argument("--dev", action="store_true",
                        help="development mode: data in ./var, content in ./content-cache, first admin created")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, including feature sub-commands."""
    common = _common()
    parser = argparse.ArgumentParser(prog="appliance", description="Offline-first education appliance daemon.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Feature parsers get `common` automatically (see _FeatureSubparsers), so every command sees one data set.

    serve = sub.add_parser("serve", parents=[common], help="run the daemon")
    serve.add_argument("--workers", type=int, default=None, help="HTTP processes (default: http.workers or CPUs)")
    serve.add_argument("--host", default=None, help="listen address (default: http.host)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: http.port)")
    serve.set_defaults(func=cmd_serve, sync=True)

    migrate = sub.add_parser("migrate", parents=[common], help="apply database migrations (with a backup first)")
    migrate.set_defaults(func=cmd_migrate)

    check = sub.add_parser("check-config", parents=[common], help="print the effective config, secrets masked")
    check.add_argument("--describe", action="store_true", help="list every key with its default and meaning")
    check.add_argument("--markdown", action="store_true", help="with --describe: the README's reference table")
    check.set_defaults(func=cmd_check_config, needs_config=False, sync=True)

    doctor = sub.add_parser("doctor", parents=[common], help="check the installation; non-zero exit on failure")
    doctor.set_defaults(func=cmd_doctor, sync=True, keeps_root=True)  # reads unit states as root, then drops

    # Each registered feature adds its own sub-commands; the core names none of them.
    from appliance.core.feature import features

    wrapped = _FeatureSubparsers(sub, common)
    for feature in features():
        register = feature.cli_function()
        if register is not None:
            register(wrapped)
    from appliance import backup

    backup.register(wrapped)
    return parser


class _FeatureSubparsers:
    """Gives every feature sub-command (and its own sub-commands) the common --config/--dev options."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parents = list(kwargs.pop("parents", [])) + [self._common]
        parser: argparse.ArgumentParser = self._sub.add_parser(name, parents=parents, **kwargs)
        original = parser.add_subparsers

        def add_subparsers(**kw: Any) -> Any:
            return _FeatureSubparsers(original(**kw), self._common)

        parser.add_subparsers = add_subparsers  # type: ignore[method-assign]
        return parser


def resolve_config(args: argparse.Namespace) -> Config:
    """Load the config the way every sub-command does, so they all act on the same data."""
    return load_config(args.config, dev=args.dev)


def _default_workers(config: Config, requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    return config.http.workers or os.cpu_count() or 1


def _prepare_metrics_dir(config: Config) -> None:
    # Must happen before prometheus_client is imported anywhere in this process (it picks its value
    # class at import time), so it is done here with plain os/shutil before importing the app.
    path = config.paths.data_dir / "run" / "metrics"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)


def _configure_logging(config: Config) -> None:
    from appliance.observability.logging import configure_logging

    configure_logging(config.logging.level, config.logging.format, dev=config.dev)


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the primary process (and its workers) until SIGTERM/SIGINT."""
    try:
        config.paths.data_dir.mkdir(parents=True, exist_ok=True)
        _prepare_metrics_dir(config)
    except OSError as exc:  # before logging exists: one line on stderr (the journal under systemd)
        print(f"appliance: start-up failed: {exc}", file=sys.stderr, flush=True)
        return 1
    os.environ[ROLE_ENV] = "primary"
    _configure_logging(config)
    from appliance.server import ServeOptions, exit_now, run_primary

    argv = (["--config", str(args.config)] if args.config else []) + (["--dev"] if args.dev else [])
    options = ServeOptions(
        host=args.host or config.http.host,
        port=config.http.port if args.port is None else args.port,
        workers=_default_workers(config, args.workers),
        argv=argv,
    )
    code = eventloop.run(run_primary(config, options), config.http.event_loop)
    if code:
        exit_now(code)
    return code


async def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    """Apply pending migrations, backing the database up first."""
    from appliance.db import migrate_config

    before, after, backup = await migrate_config(config)
    if before == after:
        print(f"database {config.database_path} is up to date (version {after})")
    else:
        print(f"database {config.database_path} migrated from version {before} to {after}")
        if backup:
            print(f"backup: {backup}")
    return 0


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def cmd_check_config(args: argparse.Namespace, config: Config | None) -> int:
    """Print the effective configuration (secrets masked) or, with --describe, every key documented."""
    if args.describe and args.markdown:
        from appliance.config import markdown_reference

        print(markdown_reference(), end="")
        return 0
    if args.describe:
        section = None
        for name, key, default, help_text, secret in describe():
            if name != section:
                print(f"\n[{name}]")
                section = name
            shown = "(secret)" if secret and default else _toml_value(default)
            print(f"# {help_text}\n{key} = {shown}")
        return 0
    assert config is not None
    print(f"# effective configuration; source: {config.source}{' (--dev)' if config.dev else ''}")
    for name, values in config.as_dict(mask_secrets=True).items():
        print(f"\n[{name}]")
        for key, value in values.items():
            print(f"{key} = {_toml_value(value)}")
    return 0


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    """Check the installation."""
    from appliance.doctor import run

    return run(config)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `appliance` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[..., Any] = args.func
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        if args.command == "check-config" and getattr(args, "describe", False):
            config = None
        elif args.command == "doctor":
            print(f"FAIL  config: {exc}")
            return 1
        else:
            print(f"appliance: config error: {exc}", file=sys.stderr)
            return 2
    if config is not None and not getattr(args, "keeps_root", False):
        from appliance.privileges import drop_to_data_owner

        drop_to_data_owner(config.paths.data_dir)
    if getattr(args, "sync", False):
        return int(func(args, config) or 0)
    if args.command != "serve":
        _configure_logging(config.replace("logging", level="warning")) if config else None
    result: Awaitable[int] = func(args, config)
    return int(asyncio.run(_run_command(result)) or 0)


async def _run_command(result: Awaitable[int]) -> int:
    from appliance.core.blocking import shutdown_pools

    try:
        return await result
    finally:
        shutdown_pools()
