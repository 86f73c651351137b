"""Reconciling the ZIM files on disk with the libraries table (run by the primary, or a CLI command)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from appliance.content.archives import ArchiveInfo, LibraryState, inspect_archive, scan_directory
from appliance.core.blocking import run_blocking
from appliance.db import Database
from appliance.db.events import EventType, add_event

log = logging.getLogger(__name__)

_FIELDS = ("uuid", "slug", "state", "error", "name", "title", "description", "language", "creator", "publisher",
           "date", "tags", "category", "flavour", "article_count", "media_count", "size", "mtime_ns",
           "has_fulltext_index", "has_main_page", "illustration")


@dataclass
class ScanReport:
    """What a scan changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"added": self.added, "updated": self.updated, "missing": self.missing, "errors": self.errors,
                "unchanged": self.unchanged}


def _stat_all(root: Path) -> dict[str, tuple[int, int]]:
    """Path -> (size, mtime_ns) of every archive under root (blocking)."""
    out: dict[str, tuple[int, int]] = {}
    for path in scan_directory(root):
        try:
            st = path.stat()
        except OSError:
            continue
        out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def _values(info: ArchiveInfo) -> tuple[object, ...]:
    """Row values in _FIELDS order."""
    return (info.uuid, info.slug, info.state.value, info.error, info.name, info.title, info.description,
            info.language, info.creator, info.publisher, info.date, info.tags, info.category, info.flavour,
            info.article_count, info.media_count, info.size, info.mtime_ns, int(info.has_fulltext_index),
            int(info.has_main_page), info.illustration)


def _unique_slug(slug: str, taken: set[str]) -> str:
    """Kiwix only logs name clashes; we suffix so that every library keeps a URL."""
    if slug not in taken:
        return slug
    n = 2
    while f"{slug}_{n}" in taken:
        n += 1
    return f"{slug}_{n}"


async def scan(db: Database, root: Path) -> ScanReport:
    """Inspect new or changed files, add/update their rows, mark vanished ones missing."""
    report = ScanReport()
    on_disk = await run_blocking("io", _stat_all, root)
    rows = {r["path"]: r for r in await db.fetchall(
        "SELECT id, path, uuid, slug, state, size, mtime_ns FROM libraries")}
    changed = [p for p, (size, mtime) in on_disk.items()
               if p not in rows or rows[p]["state"] == LibraryState.MISSING.value
               or (rows[p]["size"], rows[p]["mtime_ns"]) != (size, mtime)]
    report.unchanged = len(on_disk) - len(changed)
    infos = [await run_blocking("zim", inspect_archive, Path(p)) for p in changed]
    async with db.transaction() as tx:
        taken_slugs = {r["slug"] for p, r in rows.items() if p not in changed}
        uuids = {r["uuid"]: p for p, r in rows.items() if p not in changed}
        for info in infos:
            if info.uuid in uuids and uuids[info.uuid] != info.path:
                info = _duplicate(info, uuids[info.uuid])
            slug = _unique_slug(info.slug, taken_slugs)
            taken_slugs.add(slug)
            uuids[info.uuid or ""] = info.path
            values = list(_values(info))
            values[1] = slug
            if info.path in rows:
                assignments = ", ".join(f"{f} = ?" for f in _FIELDS)
                cur = await tx.execute(
                    f"UPDATE libraries SET {assignments}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                    " WHERE path = ? RETURNING id", (*values, info.path))
                report.updated.append(slug)
                was_listed = rows[info.path]["state"] == LibraryState.READY.value
            else:
                cols = ", ".join(("path", *_FIELDS))
                marks = ", ".join("?" * (len(_FIELDS) + 1))
                # Upsert: `appliance library rescan` may race the daemon's own scan.
                updates = ", ".join(f"{f} = excluded.{f}" for f in _FIELDS)
                cur = await tx.execute(f"INSERT INTO libraries ({cols}) VALUES ({marks})"
                                       f" ON CONFLICT (path) DO UPDATE SET {updates} RETURNING id",
                                       (info.path, *values))
                report.added.append(slug)
                was_listed = False
            found = await cur.fetchone()
            library = _event_library(found[0] if found else None, slug, info)
            if info.state is LibraryState.ERROR:
                report.errors.append(slug)
                log.warning("library %s is unreadable: %s", info.path, info.error)
                await add_event(tx, EventType.LIBRARY_ERROR, {"library": library, "error": info.error})
            elif not was_listed:
                await add_event(tx, EventType.LIBRARY_ADDED, {"library": library})
        for path, row in rows.items():
            if path not in on_disk and row["state"] != LibraryState.MISSING.value:
                await tx.execute("UPDATE libraries SET state = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')"
                                 " WHERE id = ?", (LibraryState.MISSING.value, row["id"]))
                report.missing.append(row["slug"])
                await add_event(tx, EventType.LIBRARY_REMOVED, {"library": {
                    "id": row["id"], "uuid": row["uuid"], "slug": row["slug"], "path": path}})
    if report.added or report.updated or report.missing:
        log.info("library scan: %d added, %d updated, %d missing, %d unreadable", len(report.added),
                 len(report.updated), len(report.missing), len(report.errors))
    return report


def _event_library(library_id: int | None, slug: str, info: ArchiveInfo) -> dict[str, object]:
    """A library as its domain events carry it."""
    return {"id": library_id, "uuid": info.uuid, "slug": slug, "path": info.path, "title": info.title,
            "language": info.language, "article_count": info.article_count, "size": info.size}


def _duplicate(info: ArchiveInfo, other: str) -> ArchiveInfo:
    """A second copy of an archive already in the library is an error, not a second library."""
    from appliance.content.archives import error_info

    return error_info(Path(info.path), info.slug, info.size, info.mtime_ns,
                      f"duplicate of {other} (same ZIM uuid {info.uuid})")
