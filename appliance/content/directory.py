"""Each process's in-memory view of the library (records, visibility, block lists) and its open archives."""

import logging
from dataclasses import dataclass
from pathlib import Path

from libzim.reader import Archive

from appliance.content.archives import LibraryState, open_archive
from appliance.content.blocklist import Blocklist
from appliance.core.blocking import run_blocking
from appliance.db import Database
from appliance.web.policy import Principal, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Library:
    """What the hot path needs to know about one library."""

    id: int
    uuid: str
    slug: str
    path: str
    state: LibraryState
    title: str
    language: str
    has_fulltext_index: bool
    facilities: frozenset[int]
    blocklist: Blocklist


def can_see(p: Principal | None, lib: Library, anonymous_facility: int | None) -> bool:
    """Admins see every library; others only those visible to one of their facilities."""
    if p is None:
        return anonymous_facility is not None and anonymous_facility in lib.facilities
    if p.role is not Role.LEARNER:
        return True
    return bool(lib.facilities & p.facility_ids)


class Directory:
    """Records keyed by slug/id/uuid, reloaded when the database's library generation changes."""

    def __init__(self, anonymous_facility_id: int, refresh_interval_s: float) -> None:
        self.anonymous_facility_id = anonymous_facility_id
        self.refresh_interval_s = refresh_interval_s
        self.generation = -1
        self.by_slug: dict[str, Library] = {}
        self.by_id: dict[int, Library] = {}
        self.by_uuid: dict[str, Library] = {}
        self.anonymous_allowed = False
        self._checked_at = float("-inf")
        self._archives: dict[int, tuple[str, Archive]] = {}

    def due(self, now: float) -> bool:
        """Whether the next refresh would read the database."""
        return now - self._checked_at >= self.refresh_interval_s

    async def refresh(self, db: Database, now: float, *, force: bool = False) -> None:
        """Reload if due and the generation moved (one cheap read per interval)."""
        if not force and not self.due(now):
            return
        self._checked_at = now
        generation = await db.fetchval("SELECT generation FROM library_generation WHERE id = 1")
        if generation == self.generation and not force:
            return
        await self._load(db)
        self.generation = generation

    async def _load(self, db: Database) -> None:
        """Read every library with its visible facilities and block patterns."""
        vis: dict[int, set[int]] = {}
        for row in await db.fetchall("SELECT library_id, facility_id FROM library_visibility"):
            vis.setdefault(row["library_id"], set()).add(row["facility_id"])
        blocks: dict[int, list[str]] = {}
        for row in await db.fetchall("SELECT library_id, pattern FROM library_blocklist ORDER BY pattern"):
            blocks.setdefault(row["library_id"], []).append(row["pattern"])
        libs = [Library(
            id=r["id"], uuid=r["uuid"], slug=r["slug"], path=r["path"], state=LibraryState(r["state"]),
            title=r["title"], language=r["language"], has_fulltext_index=bool(r["has_fulltext_index"]),
            facilities=frozenset(vis.get(r["id"], ())), blocklist=Blocklist(tuple(blocks.get(r["id"], ()))),
        ) for r in await db.fetchall(
            "SELECT id, uuid, slug, path, state, title, language, has_fulltext_index FROM libraries")]
        anon = await db.fetchval("SELECT anonymous_browsing FROM facilities WHERE id = ?",
                                 (self.anonymous_facility_id,))
        self.by_slug = {lib.slug: lib for lib in libs}
        self.by_id = {lib.id: lib for lib in libs}
        self.by_uuid = {lib.uuid: lib for lib in libs}
        self.anonymous_allowed = bool(anon)
        for lib_id, (uuid, _archive) in list(self._archives.items()):
            lib = self.by_id.get(lib_id)
            if lib is None or lib.uuid != uuid or lib.state is not LibraryState.READY:
                del self._archives[lib_id]  # replaced or gone: the next read reopens it

    def anonymous_facility(self) -> int | None:
        """The facility anonymous visitors count as, when anonymous browsing is on there."""
        return self.anonymous_facility_id if self.anonymous_allowed else None

    def visible(self, p: Principal | None) -> list[Library]:
        """Ready libraries the caller may read."""
        anon = self.anonymous_facility()
        return [lib for lib in self.by_slug.values()
                if lib.state is LibraryState.READY and can_see(p, lib, anon)]

    def cached_archive(self, lib: Library) -> Archive | None:
        """The open archive of a library, if this process already has it."""
        held = self._archives.get(lib.id)
        return held[1] if held is not None and held[0] == lib.uuid else None

    async def archive(self, lib: Library) -> Archive:
        """The open archive (opened once per process, off the event loop)."""
        held = self.cached_archive(lib)
        if held is not None:
            return held
        archive = await run_blocking("zim", open_archive, Path(lib.path))
        self._archives[lib.id] = (lib.uuid, archive)
        return archive
