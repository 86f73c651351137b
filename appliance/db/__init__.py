"""The SQLite store: one writer and a read pool per process, numbered migrations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from appliance.core.blocking import run_blocking
from appliance.db.database import Database, WriteResult
from appliance.db.migrate import migrate

if TYPE_CHECKING:
    from appliance.config import Config

__all__ = ["Database", "WriteResult", "open_database", "migrate_config"]


async def migrate_config(config: Config) -> tuple[int, int, object]:
    """Migrate the configured database (off the event loop), backing it up first."""
    return await run_blocking(
        "io", migrate, config.database_path,
        backup_dir=config.paths.data_dir / "backups", keep=config.database.backup_keep,
    )


@contextlib.asynccontextmanager
async def open_database(config: Config, *, run_migrations: bool = True) -> AsyncIterator[Database]:
    """Migrate (unless told not to) and open the configured database for the duration of the block."""
    if run_migrations:
        await migrate_config(config)
    db = Database(
        config.database_path,
        read_pool_size=config.database.read_pool_size,
        busy_timeout_ms=config.database.busy_timeout_ms,
    )
    await db.open()
    try:
        yield db
    finally:
        await db.close()
