"""Migrations: stepwise upgrades from version 0 give exactly the fresh schema; a backup comes first."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.db.migrate import available_migrations, migrate, schema_dump


def test_migration_files_are_numbered_and_complete() -> None:
    migrations = available_migrations()
    assert migrations, "no migrations shipped"
    versions = [m.version for m in migrations]
    # 1, 2, 3, ... with no gap: a gap would let a branch's migration land below a database's user_version
    # and never run there.
    assert versions == list(range(1, len(versions) + 1))


def test_stepwise_upgrade_from_zero_equals_fresh_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    migrate(fresh)
    stepped = tmp_path / "stepped.db"
    sqlite3.connect(stepped).close()  # an existing, empty database at user_version 0
    for migration in available_migrations():
        before, after, _ = migrate(stepped, target=migration.version)
        assert after == migration.version
    assert schema_dump(stepped) == schema_dump(fresh)
    conn = sqlite3.connect(stepped)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == available_migrations()[-1].version
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_migrate_again_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    migrate(db)
    before = schema_dump(db)
    start, end, backup = migrate(db, backup_dir=tmp_path / "backups")
    assert start == end and backup is None
    assert schema_dump(db) == before
    assert not (tmp_path / "backups").exists()


def test_backup_is_taken_before_migrating(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    migrate(db, target=1)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO facilities (name) VALUES ('Unit A')")
    conn.commit()
    conn.close()
    newest = available_migrations()[-1].version
    assert newest > 1, "needs a second migration to upgrade to"
    start, end, backup = migrate(db, backup_dir=tmp_path / "backups")
    assert (start, end) == (1, newest)
    assert backup is not None and backup.exists()
    copy = sqlite3.connect(backup)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == 1
    assert copy.execute("SELECT name FROM facilities").fetchall() == [("Unit A",)]
    copy.close()
    assert oct(backup.stat().st_mode & 0o777) == "0o600"


def test_newer_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 9999")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this appliance knows"):
        migrate(db)


def test_migrate_command_uses_the_same_data_as_serve(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "appliance", "migrate", "--dev"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "migrated from version 0" in out.stdout
    assert (tmp_path / "var" / "appliance.db").exists()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert "up to date" in out.stdout


def test_refused_downloads_get_their_own_failure_kind_on_upgrade(tmp_path: Path) -> None:
    """0006 rebuilds the attempts table: refusals stored as `unsupported` before it become `refused`."""
    db = tmp_path / "a.db"
    migrate(db, target=5)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO videos (id, source_kind, title) VALUES (1, 'upload', 'v')")
        conn.executemany(
            "INSERT INTO video_download_attempts (video_id, attempt, outcome, failure_kind, error)"
            " VALUES (1, ?, ?, ?, ?)",
            [(1, "failed", "unsupported", "refused: address 10.0.0.1 is loopback, link-local or private"),
             (2, "failed", "unsupported", "Unsupported URL: https://example.org/x"),
             (3, "waiting", "unreachable", None)])
    conn.close()
    migrate(db)
    conn = sqlite3.connect(db)
    kinds = [r[0] for r in conn.execute("SELECT failure_kind FROM video_download_attempts ORDER BY attempt")]
    assert kinds == ["refused", "unsupported", "unreachable"]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO video_download_attempts (video_id, attempt, outcome, failure_kind)"
                     " VALUES (1, 4, 'failed', 'bogus')")
    conn.close()
