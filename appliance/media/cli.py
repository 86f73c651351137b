"""Command-line sub-commands of the media feature: `appliance video add|reindex|sweep`."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.config import Config


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """Queue downloads; the running daemon picks up new pending videos within seconds."""
    from appliance.core.clock import Clock
    from appliance.db import open_database
    from appliance.media.service import MediaService
    from appliance.media.space import NoSpace
    from appliance.media.ssrf import UnresolvableHost, UrlRefused, check_url

    async with open_database(config) as db:
        svc = MediaService(config, db, None, Clock())
        refused = 0
        for url in args.urls:
            try:
                await check_url(url, svc.allowed_networks)
            except UnresolvableHost:
                print(f"note: {url} does not resolve now; the download job checks it again")
            except UrlRefused as exc:
                print(f"refused {url}: {exc}")
                refused += 1
        if refused:
            print("nothing was added")
            return 2
        try:
            svc.space.check(await svc.repo.used_bytes())
        except NoSpace as exc:
            print(f"refused: {exc}")
            return 3
        for url in dict.fromkeys(args.urls):
            video_id, created = await svc.repo.add_download(url, None)
            print(f"{'queued' if created else 'already cached'}: video {video_id} {url}")
    return 0


async def cmd_reindex(args: argparse.Namespace, config: Config) -> int:
    """Rebuild video rows from the info.json sidecars in storage."""
    from appliance.core.clock import Clock
    from appliance.db import open_database
    from appliance.media.maintenance import reindex
    from appliance.media.service import MediaService

    async with open_database(config) as db:
        svc = MediaService(config, db, None, Clock())
        await svc.start()
        try:
            report = await reindex(svc)
        finally:
            await svc.close()
    print(f"restored {report.restored}, updated {report.updated}, skipped {len(report.skipped)}")
    for line in report.skipped:
        print(f"  skipped {line}")
    return 0


async def cmd_sweep(args: argparse.Namespace, config: Config) -> int:
    """Remove stored files that no video row owns (older than media.sweep_grace_s)."""
    from appliance.core.clock import Clock
    from appliance.db import open_database
    from appliance.media.maintenance import sweep
    from appliance.media.service import MediaService

    async with open_database(config) as db:
        svc = MediaService(config, db, None, Clock())
        await svc.start()
        try:
            removed = await sweep(svc)
        finally:
            await svc.close()
    print(f"removed {removed} orphaned file(s)")
    return 0


def register(sub: Any) -> None:
    """Add this feature's sub-commands to the `appliance` parser."""
    video = sub.add_parser("video", help="the video cache")
    commands = video.add_subparsers(dest="video_command", required=True)
    add = commands.add_parser("add", help="queue yt-dlp downloads for URLs (playlists expand)")
    add.add_argument("urls", nargs="+", metavar="URL")
    add.set_defaults(func=cmd_add)
    reindex = commands.add_parser("reindex", help="rebuild video rows from the stored info.json sidecars")
    reindex.set_defaults(func=cmd_reindex)
    sweep = commands.add_parser("sweep", help="remove stored files no video owns")
    sweep.set_defaults(func=cmd_sweep)
