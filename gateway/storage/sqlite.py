"""Embedded SQLite backend: WAL, foreign keys, schema migrated on open.

Reads go through aiosqlite on a connection of their own (autocommit; WAL gives each statement a committed
snapshot), except reads by key, which run inline on the event loop's thread, on another connection: they
take microseconds, and in WAL mode a reader never waits for a writer. Writes go to one writer thread as
units of work (gateway.storage.sqlite_writer): each unit runs to completion there in a single hop, and the
units queued meanwhile share one transaction and so one fsync: group commit. A unit's answer is handed
back only once its transaction committed, so an acknowledged write is on disk. The rate-limit buckets, in a
file of their own that is never synced, are written inline. Other processes (the CLI while a server runs)
wait on `busy_timeout`; SQLite has one writer at a time, so named locks have nothing left to do.
"""
from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.storage.db import Db, T, Unit
from gateway.storage.auth_failures import FAILURES_TABLES
from gateway.storage.rate_limits import BUCKETS_TABLE
from gateway.storage.schema import migrations
from gateway.storage.sqlite_writer import GroupWriter, InlineWriter, unavailable

# AUTOINCREMENT: an event's number is never reused, even after the newest events are purged.
MIGRATIONS = migrations(bigint="INTEGER", blob="BLOB", without_rowid="WITHOUT ROWID",
                        event_seq="INTEGER PRIMARY KEY AUTOINCREMENT", event_sequence="",
                        numbered_at_commit="", orders_without_parent_keys="")
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    # FULL: a commit is on disk before a 201 is sent, even if the machine loses power.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


def _pragmas(busy_timeout_seconds: float) -> tuple[str, ...]:
    return (*PRAGMAS, f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")


def database_path(url: str) -> str:
    """sqlite:///relative/path, sqlite:////absolute/path."""
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(f"not a SQLite file URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)")
    return path[1:]


class ReaderDb:
    """Statements on aiosqlite's thread; reads by key (`fetch_by_key`) on a second connection, inline."""

    writable_ctes = False
    commits_in_order = True
    keyed_reads_travel = False

    def __init__(self, connection: aiosqlite.Connection, inline: sqlite3.Connection) -> None:
        self._connection = connection
        self._inline = inline

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._connection.execute_fetchall(sql, params))
        except sqlite3.Error as error:
            raise unavailable(error) from error

    async def fetch_by_key(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """On the event loop's own thread: a read of a few rows by key takes microseconds, less than the hop to
        a thread and back, and in WAL mode a reader never waits for a writer. Where it would wait for
        something else (another connection recovering the WAL index), busy_timeout 0 makes it fail at once,
        and the read takes the thread, which waits within the busy timeout."""
        try:
            return self._inline.execute(sql, params).fetchall()
        except sqlite3.OperationalError as error:
            if unavailable(error) is error:
                raise
        return await self.fetch(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise TypeError("the SQLite reader does not write")

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise TypeError("the SQLite reader does not write")

    async def lock(self, name: str, *, wait: bool = True) -> None:
        """Nothing to lock outside a transaction."""

    async def lock_shared(self, name: str) -> None:
        """Nothing to lock outside a transaction."""

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise TypeError("the SQLite reader does not write")


class SqliteBackend:
    def __init__(self, reader: ReaderDb, writer: GroupWriter, bucket_writer: InlineWriter) -> None:
        self._read_db = reader
        self._writer = writer
        self._bucket_writer = bucket_writer

    @property
    def reader(self) -> Db:
        return self._read_db

    async def write(self, unit: Unit[T], *, once: bool = False, lengthy: bool = False, grouped: bool = False) -> T:
        # Never run twice: SQLite waits within its busy timeout. Every unit is grouped here (one writer thread).
        return await self._writer.write(unit)

    async def write_buckets(self, unit: Unit[T]) -> T:
        return await self._bucket_writer.write(unit)


def buckets_path(path: str) -> str:
    """The rate-limit buckets' file beside the database: shared by every process on the database, written
    without waiting for the disk (state that may be lost), and never behind an order's write lock."""
    return f"{path}-rate-limits"


def _connect(path: str, pragmas: Sequence[str], prepare: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    """Opened here, in the caller's thread, so that a file that cannot be opened fails at once."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in pragmas:
            connection.execute(pragma)
        prepare(connection)
    except BaseException:
        connection.close()
        raise
    return connection


@asynccontextmanager
async def open_sqlite(url: str, busy_timeout_seconds: float = 5.0) -> AsyncIterator[SqliteBackend]:
    path = database_path(url)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pragmas = _pragmas(busy_timeout_seconds)
    inline = (*pragmas, "PRAGMA busy_timeout = 0")  # where it would wait, it hands over to a thread at once
    buckets = "PRAGMA synchronous = OFF"
    async with AsyncExitStack() as stack:
        writer = GroupWriter(_connect(path, pragmas, _migrate), busy_timeout_seconds)
        stack.push_async_callback(writer.close)
        bucket_thread = GroupWriter(_connect(buckets_path(path), (*pragmas, buckets), _create_buckets),
                                    busy_timeout_seconds)
        stack.push_async_callback(bucket_thread.close)
        bucket_writer = InlineWriter(_connect(buckets_path(path), (*inline, buckets), _as_is), bucket_thread)
        stack.callback(bucket_writer.close)
        reads_by_key = _connect(path, inline, _as_is)
        stack.callback(reads_by_key.close)
        reader = await stack.enter_async_context(aiosqlite.connect(path, isolation_level=None))
        for pragma in pragmas:
            await reader.execute(pragma)
        yield SqliteBackend(ReaderDb(reader, reads_by_key), writer, bucket_writer)


def _as_is(connection: sqlite3.Connection) -> None:
    """Nothing to prepare: another connection made the file ready."""


def _create_buckets(connection: sqlite3.Connection) -> None:
    for statement in (BUCKETS_TABLE, *FAILURES_TABLES):
        connection.execute(statement)


def _migrate(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
