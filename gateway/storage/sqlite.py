"""Embedded SQLite backend (aiosqlite): WAL, foreign keys, schema migrated on open.

Two connections: one for reads (autocommit; WAL gives each statement a committed snapshot) and one for
writes, whose transactions are serialized by an asyncio lock so that no other coroutine's statement can
slip into an open transaction. Other processes (the CLI while a server runs) wait on `busy_timeout`; a
SQLite database has one writer at a time, so named locks have nothing left to do.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.storage.sql import SCHEMA_MIGRATIONS, Db, SqlStorage

BUSY_TIMEOUT_MS = 10_000

MIGRATIONS = tuple(
    script.format(bigint="INTEGER", blob="BLOB", without_rowid="WITHOUT ROWID") for script in SCHEMA_MIGRATIONS
)


def database_path(url: str) -> str:
    """sqlite:///relative/path, sqlite:////absolute/path."""
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(f"not a SQLite file URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)")
    return path[1:]


class SqliteDb:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._connection.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, rows)

    async def lock(self, name: str) -> None:
        """Writers are already one at a time (BEGIN IMMEDIATE, and the write lock within a process)."""


class SqliteStorage(SqlStorage):
    def __init__(self, reader: aiosqlite.Connection, writer: aiosqlite.Connection) -> None:
        self._read_db = SqliteDb(reader)
        self._writer = writer
        self._write_db = SqliteDb(writer)
        self._write_lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[SqliteStorage]:
        path = database_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Fail here, in the caller's thread, when the file cannot be opened: aiosqlite's worker thread
        # would report the failure to an event loop that may be closing.
        sqlite3.connect(path).close()
        async with aiosqlite.connect(path, isolation_level=None) as writer:
            await _configure(writer)
            await _migrate(writer)
            async with aiosqlite.connect(path, isolation_level=None) as reader:
                await _configure(reader)
                yield cls(reader, writer)

    @property
    def _reader(self) -> Db:
        return self._read_db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Db]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._write_db
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")


async def _configure(db: aiosqlite.Connection) -> None:
    for pragma in (
        "PRAGMA journal_mode = WAL",
        # FULL: a commit is on disk before a 201 is sent, even if the machine loses power.
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    ):
        await db.execute(pragma)


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = list(await db.execute_fetchall("PRAGMA user_version"))[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")
