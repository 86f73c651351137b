"""Numbered .sql migrations keyed on PRAGMA user_version, with a backup copy taken before migrating."""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from appliance.core.clock import Clock

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered schema step."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped in appliance/db/migrations, in order of their unique numbers."""
    found = []
    for entry in resources.files("appliance.db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {[m.name for m in found]}")
    return found


def current_version(conn: sqlite3.Connection) -> int:
    """PRAGMA user_version."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def backup(db_path: Path, backup_dir: Path, version: int, keep: int, clock: Clock | None = None) -> Path:
    """Copy the live database (consistently, through SQLite's backup API) and prune old copies."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = (clock or Clock()).now().strftime("%Y%m%dT%H%M%S%f")
    target = backup_dir / f"{db_path.stem}-v{version}-{stamp}.db"
    src = sqlite3.connect(str(db_path))
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    target.chmod(0o600)
    copies = sorted(backup_dir.glob(f"{db_path.stem}-v*.db"), key=lambda p: p.stat().st_mtime)
    for old in copies[:-keep]:
        old.unlink(missing_ok=True)
    return target


def migrate(db_path: Path, *, backup_dir: Path | None = None, keep: int = 3,
            target: int | None = None) -> tuple[int, int, Path | None]:
    """Bring the database to the newest (or target) version; returns (from, to, backup or None). Blocking."""
    migrations = available_migrations()
    newest = migrations[-1].version if migrations else 0
    if target is None:
        target = newest
    migrations = [m for m in migrations if m.version <= target]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    existed = db_path.exists() and db_path.stat().st_size > 0
    conn = sqlite3.connect(str(db_path), isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = OFF")  # table rebuilds in migrations need it off
        start = current_version(conn)
        if start > newest:
            raise RuntimeError(f"database is at version {start}, newer than this appliance knows ({newest})")
        if start >= target:
            return start, start, None
        copy = None
        if existed and backup_dir is not None:
            copy = backup(db_path, backup_dir, start, keep)
            log.info("database backed up to %s before migrating", copy)
        for migration in (m for m in migrations if m.version > start):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # The version is re-read inside the lock: another process may have migrated meanwhile.
                if current_version(conn) >= migration.version:
                    conn.execute("ROLLBACK")
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("applied migration %s", migration.name)
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key check failed after migrating: {problems[:3]}")
        return start, target, copy
    finally:
        conn.close()


def _statements(sql: str) -> list[str]:
    """Split a migration into statements with sqlite3.complete_statement (handles triggers and strings)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise RuntimeError(f"migration ends with an incomplete statement: {buf.strip()[:60]}")
    return out


def schema_dump(db_path: Path) -> list[tuple[str, str, str]]:
    """(type, name, normalised sql) of every schema object, for comparing schemas in tests and doctor."""
    conn = sqlite3.connect(str(db_path))
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return [(t, n, " ".join((s or "").split())) for t, n, s in rows]
