"""Library imports: queued rows downloaded by the primary, resumable across restarts, verified, renamed."""

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from appliance.content.downloads import (
    DownloadError,
    ImportState,
    download,
    existing_size,
    fetch_sidecar,
    hash_file,
    part_path,
)
from appliance.content.keys import CONTENT
from appliance.content.metrics import IMPORT_BYTES
from appliance.core import egress
from appliance.core.blocking import run_blocking
from appliance.db import Database
from appliance.keys import CONFIG, DB, HTTP_CLIENT

log = logging.getLogger(__name__)
ACTIVE = (ImportState.QUEUED.value, ImportState.DOWNLOADING.value, ImportState.VERIFYING.value)


async def _set(db: Database, import_id: int, **fields: object) -> None:
    """Update an import row."""
    cols = ", ".join(f"{k} = ?" for k in fields)
    await db.execute(f"UPDATE library_imports SET {cols}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                     " WHERE id = ?", (*fields.values(), import_id))


async def run_import(app: web.Application, import_id: int) -> None:
    """Drive one import to done or failed; any step may be interrupted and resumed later."""
    db = app[DB]
    row = await db.fetchone("SELECT * FROM library_imports WHERE id = ?", (import_id,))
    if row is None or row["state"] not in ACTIVE:
        return
    root: Path = app[CONFIG].paths.content_root / "zim"
    part = part_path(root, import_id, row["file_name"])
    final = root / row["file_name"]
    session = app[HTTP_CLIENT]
    try:
        algo, digest = row["checksum_algo"], row["checksum"]
        if digest is None:
            found = await fetch_sidecar(session, row["url"])
            if found:
                algo, digest = found
                await _set(db, import_id, checksum_algo=algo, checksum=digest)
        if row["state"] != ImportState.VERIFYING.value:
            await _set(db, import_id, state=ImportState.DOWNLOADING.value)
            have = await run_blocking("io", existing_size, part)

            async def progress(done: int, total: int | None) -> None:
                nonlocal have
                IMPORT_BYTES.inc(max(0, done - have))
                have = done
                await _set(db, import_id, bytes_done=done, bytes_total=total)

            await download(session, row["url"], part, have, progress,
                           read_timeout=app[CONFIG].content.upstream_timeout_s * 6)
            await _set(db, import_id, state=ImportState.VERIFYING.value)
        if digest:
            actual = await run_blocking("io", hash_file, part, algo)
            if actual != digest:
                await run_blocking("io", part.unlink, True)
                raise DownloadError(f"{algo} mismatch: expected {digest}, got {actual}")
        if await run_blocking("io", final.exists):
            raise DownloadError(f"{final.name} already exists in the library")
        await run_blocking("io", part.rename, final)
    except DownloadError as exc:
        if exc.retryable:
            raise
        await _set(db, import_id, state=ImportState.FAILED.value, error=str(exc)[:500])
        log.warning("import %d of %s failed: %s", import_id, row["url"], exc)
        return
    except OSError as exc:
        if not egress.refused(exc):
            raise  # uplink down: import_loop keeps the row and retries
        # the target (or a redirect) is outside egress.allowed_networks: retrying cannot help
        error = "refused by egress policy: the URL or a redirect points at a non-public address " \
                "(see egress.allowed_networks)"
        await _set(db, import_id, state=ImportState.FAILED.value, error=error)
        log.warning("import %d of %s refused by the egress policy", import_id, row["url"])
        return
    report = await app[CONTENT].rescan()
    lib = await db.fetchval("SELECT id FROM libraries WHERE path = ?", (str(final),))
    await _set(db, import_id, state=ImportState.DONE.value, library_id=lib, error=None)
    log.info("import %d done: %s (%s)", import_id, final.name, report.as_dict())


async def import_loop(app: web.Application) -> None:
    """Primary-only: resume unfinished imports at start-up, then pick up queued ones as they come."""
    db = app[DB]
    interval = app[CONFIG].content.import_poll_interval_s
    while True:
        ids = [r["id"] for r in await db.fetchall(
            "SELECT id FROM library_imports WHERE state IN (?, ?, ?) ORDER BY id", ACTIVE)]
        for import_id in ids:
            try:
                await run_import(app, import_id)
            except (OSError, TimeoutError) as exc:
                # Uplink down or disk trouble: keep the row active and the partial file; retry later.
                await _set(db, import_id, error=f"will retry: {type(exc).__name__}: {exc}"[:500])
                log.info("import %d paused: %s", import_id, exc)
        await asyncio.sleep(interval)
