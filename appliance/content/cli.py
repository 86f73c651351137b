"""Command-line sub-commands of the content feature: `appliance library add|list|rescan`."""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path
from typing import Any

from appliance.config import Config


def _copy_into(src: Path, root: Path) -> Path:
    """Copy a local archive into the library (temporary name, then rename: scans never see half a file)."""
    dest = root / src.name
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".copy-{src.name}.part"
    shutil.copyfile(src, tmp)
    tmp.rename(dest)
    return dest


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """Add a local .zim (copied in and scanned now) or queue a URL for the daemon to download."""
    from appliance.content.downloads import ImportState, file_name_from_url
    from appliance.content.scanner import scan
    from appliance.core.blocking import run_blocking
    from appliance.db import open_database

    root = config.paths.content_root / "zim"
    source: str = args.source
    async with open_database(config) as db:
        if source.startswith(("http://", "https://")):
            try:
                name = file_name_from_url(source)
            except ValueError as exc:
                print(f"refused {source}: {exc}")
                return 2
            res = await db.execute("INSERT INTO library_imports (url, file_name, state) VALUES (?, ?, ?)",
                                   (source, name, ImportState.QUEUED.value))
            print(f"queued import {res.lastrowid}: {source} (the running daemon downloads it; resumable)")
            if not args.wait:
                return 0
            while True:
                row = await db.fetchone("SELECT * FROM library_imports WHERE id = ?", (res.lastrowid,))
                assert row is not None
                print(f"  {row['state']}: {row['bytes_done']} of {row['bytes_total'] or '?'} bytes", flush=True)
                if row["state"] in ("done", "failed"):
                    return 0 if row["state"] == "done" else 1
                await asyncio.sleep(2)
        path = Path(source)
        if path.suffix.lower() != ".zim" or not await run_blocking("io", path.is_file):
            print(f"{source}: not a .zim file")
            return 2
        try:
            dest = await run_blocking("io", _copy_into, path, root)
        except OSError as exc:
            print(f"could not copy {source}: {exc}")
            return 1
        report = await scan(db, root)
        row = await db.fetchone("SELECT slug, state, error FROM libraries WHERE path = ?", (str(dest),))
        print(f"added {dest.name} as {row['slug'] if row else '?'} ({row['state'] if row else '?'})"
              + (f": {row['error']}" if row and row["error"] else ""))
        print(f"scan: {report.as_dict()}")
        return 0 if row is not None and row["state"] == "ready" else 1


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """Print every library with its state."""
    from appliance.db import open_database

    async with open_database(config) as db:
        rows = await db.fetchall("SELECT id, slug, state, article_count, title, error FROM libraries ORDER BY slug")
    for r in rows:
        extra = f"  ({r['error']})" if r["error"] else ""
        print(f"{r['id']:>4}  {r['slug']:<40} {r['state']:<8} {r['article_count']:>8}  {r['title']}{extra}")
    return 0


async def cmd_rescan(args: argparse.Namespace, config: Config) -> int:
    """Scan the content root now (the daemon notices the changes within content.refresh_interval_s)."""
    from appliance.content.scanner import scan
    from appliance.db import open_database

    async with open_database(config) as db:
        report = await scan(db, config.paths.content_root / "zim")
    print(report.as_dict())
    return 0


def register(sub: Any) -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
    library = sub.add_parser("library", help="the ZIM knowledge library")
    commands = library.add_subparsers(dest="library_command", required=True)
    add = commands.add_parser("add", help="add a local .zim file, or queue a download from an http(s) URL")
    add.add_argument("source", metavar="PATH|URL")
    add.add_argument("--wait", action="store_true", help="for a URL: wait and print progress until it finishes")
    add.set_defaults(func=cmd_add)
    listing = commands.add_parser("list", help="list libraries and their state")
    listing.set_defaults(func=cmd_list)
    rescan = commands.add_parser("rescan", help="scan the content root for added or removed archives")
    rescan.set_defaults(func=cmd_rescan)
