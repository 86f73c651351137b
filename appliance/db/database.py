"""SQLite through aiosqlite: one writer connection per process, a small read pool, WAL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

Params = Sequence[Any] | dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What one write statement did."""

    lastrowid: int | None
    rowcount: int


class DatabaseClosed(RuntimeError):
    """The database was used after close()."""


async def _connect(path: Path, *, busy_timeout_ms: int, readonly: bool) -> aiosqlite.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so that a writer takes the lock up front
    # instead of failing mid-transaction when it upgrades from a read lock.
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA synchronous = NORMAL")
    if readonly:
        await conn.execute("PRAGMA query_only = ON")
    return conn


class Database:
    """All writes in this process go through one connection (serialised by a lock); reads use a pool."""

    def __init__(self, path: Path, *, read_pool_size: int = 4, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._read_pool_size = read_pool_size
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []

    async def open(self) -> None:
        """Open the writer (switching the file to WAL) and the read pool."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await _connect(self.path, busy_timeout_ms=self._busy_timeout_ms, readonly=False)
        await self._writer.execute("PRAGMA journal_mode = WAL")
        for _ in range(self._read_pool_size):
            conn = await _connect(self.path, busy_timeout_ms=self._busy_timeout_ms, readonly=True)
            self._all_readers.append(conn)
            self._readers.put_nowait(conn)

    async def close(self) -> None:
        """Close every connection; later use raises DatabaseClosed."""
        async with self._write_lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                await writer.close()
        readers, self._all_readers = self._all_readers, []
        for conn in readers:
            await conn.close()

    @property
    def is_open(self) -> bool:
        """True between open() and close()."""
        return self._writer is not None

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._writer is None:
            raise DatabaseClosed("database is closed")
        conn = await self._readers.get()
        try:
            yield conn
        finally:
            self._readers.put_nowait(conn)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of a read query."""
        # execute_fetchall is one hop to aiosqlite's thread; execute + fetch + close would be three.
        async with self._reader() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row of a read query, or None (use LIMIT 1 on queries that may match many rows)."""
        async with self._reader() as conn:
            rows = list(await conn.execute_fetchall(sql, params))
            return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction (BEGIN IMMEDIATE): commit on success, roll back on any exception."""
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise DatabaseClosed("database is closed")
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                raise
            else:
                try:
                    await conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("ROLLBACK")
                    raise

    async def execute(self, sql: str, params: Params = ()) -> WriteResult:
        """One write statement in its own transaction."""
        async with self.transaction() as tx:
            cur = await tx.execute(sql, params)
            return WriteResult(cur.lastrowid, cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """One statement for many rows in one transaction (for batched writes); returns rows changed."""
        async with self.transaction() as tx:
            cur = await tx.executemany(sql, rows)
            return cur.rowcount

    async def ping(self) -> bool:
        """True when a trivial read succeeds (for /readyz)."""
        try:
            return await self.fetchval("SELECT 1") == 1
        except (sqlite3.Error, DatabaseClosed):
            return False
