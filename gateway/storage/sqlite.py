"""Embedded SQLite backend: WAL, foreign keys, schema migrated on open.

Reads go through aiosqlite on a connection of their own (autocommit; WAL gives each statement a committed
snapshot). Writes go to one writer thread as units of work: each unit runs to completion there in a single
hop, with no statement waiting on the event loop, and the units queued meanwhile share one transaction
(each in a savepoint of its own) and so one fsync: group commit. A unit's answer is handed back only once
its transaction committed, so an acknowledged write is on disk. Other processes (the CLI while a server
runs) wait on `busy_timeout`; SQLite has one writer at a time, so named locks have nothing left to do.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.storage.db import Db, T, Unit
from gateway.storage.rate_limits import BUCKETS_TABLE
from gateway.storage.schema import migrations
from gateway.storage.types import StorageUnavailable

GROUP_COMMIT_MAX = 64  # units sharing one transaction at most: bounds the work a failed commit undoes

# AUTOINCREMENT: an event's number is never reused, even after the newest events are purged.
MIGRATIONS = migrations(bigint="INTEGER", blob="BLOB", without_rowid="WITHOUT ROWID",
                        event_seq="INTEGER PRIMARY KEY AUTOINCREMENT", event_sequence="")
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    # FULL: a commit is on disk before a 201 is sent, even if the machine loses power.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)
# SQLite's own retry of a locked database (busy_timeout) is the gateway's wait; then the database is
# unavailable. So are a full disk and an I/O error: the transaction rolled back, nothing was written.
UNAVAILABLE_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


def _pragmas(busy_timeout_seconds: float) -> tuple[str, ...]:
    return (*PRAGMAS, f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")


def unavailable(error: BaseException) -> BaseException:
    """StorageUnavailable for the failures that mean "not now", the error itself for any other."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(error, sqlite3.OperationalError) and code is not None and code & 0xFF in UNAVAILABLE_CODES:
        return StorageUnavailable(f"SQLite: {error}")
    return error


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

    async def lock(self, name: str) -> None:
        """Nothing to lock outside a transaction."""

    async def lock_shared(self, name: str) -> None:
        """Nothing to lock outside a transaction."""

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise TypeError("the SQLite reader does not write")


class WriterDb:
    """The writer connection, called on the writer thread: its coroutines never suspend."""

    writable_ctes = False
    commits_in_order = True

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._connection.execute(sql, params).fetchall()

    fetch_by_key = fetch

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)

    async def lock(self, name: str) -> None:
        """Writers are already one at a time (one writer thread, BEGIN IMMEDIATE across processes)."""

    async def lock_shared(self, name: str) -> None:
        """Writers are already one at a time: an import's transaction holds the database's write lock."""

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Transactions commit one at a time here, in the order they run: nothing to wait for."""
        self._connection.executemany(sql, rows)


def _run_to_completion(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        coroutine.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coroutine.close()
    raise RuntimeError("a unit of work awaited something other than its database")


_Result = tuple[BaseException | None, Any]


class GroupWriter:
    """One thread, one connection; the units queued while a transaction runs make up the next one."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._db = WriterDb(connection)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._queue: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, unit: Unit[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((unit, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:GROUP_COMMIT_MAX], self._queue[GROUP_COMMIT_MAX:]
            try:
                results = await loop.run_in_executor(self._thread, self._commit, [unit for unit, _ in batch])
            except BaseException as failure:  # the commit itself failed: nothing of the batch was written
                results = [(unavailable(failure), None)] * len(batch)
            for (_, future), (error, value) in zip(batch, results):
                if future.done():  # its caller went away; the write stands, as a replay will show
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)

    def _commit(self, units: list[Unit[Any]]) -> list[_Result]:
        execute = self._connection.execute
        execute("BEGIN IMMEDIATE")
        try:
            results: list[_Result] = []
            for unit in units:
                execute("SAVEPOINT unit")
                try:
                    results.append((None, _run_to_completion(unit(self._db))))
                except Exception as error:
                    execute("ROLLBACK TO unit")
                    results.append((unavailable(error), None))
                execute("RELEASE unit")
            execute("COMMIT")
        except BaseException:
            if self._connection.in_transaction:
                execute("ROLLBACK")
            raise
        return results

    async def close(self) -> None:
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._connection.close)
        self._thread.shutdown()


class SqliteBackend:
    def __init__(self, reader: ReaderDb, writer: GroupWriter, bucket_writer: GroupWriter) -> None:
        self._read_db = reader
        self._writer = writer
        self._bucket_writer = bucket_writer

    @property
    def reader(self) -> Db:
        return self._read_db

    async def write(self, unit: Unit[T], *, once: bool = False) -> T:
        return await self._writer.write(unit)  # never run twice: SQLite waits within its busy timeout

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
    writer = GroupWriter(_connect(path, pragmas, _migrate))
    try:
        bucket_writer = GroupWriter(_connect(
            buckets_path(path), (*pragmas, "PRAGMA synchronous = OFF"), _create_buckets
        ))
    except BaseException:
        await writer.close()
        raise
    try:
        inline = _connect(path, (*pragmas, "PRAGMA busy_timeout = 0"), lambda _: None)
        try:
            async with aiosqlite.connect(path, isolation_level=None) as reader:
                for pragma in pragmas:
                    await reader.execute(pragma)
                yield SqliteBackend(ReaderDb(reader, inline), writer, bucket_writer)
        finally:
            inline.close()
    finally:
        await bucket_writer.close()
        await writer.close()


def _create_buckets(connection: sqlite3.Connection) -> None:
    connection.execute(BUCKETS_TABLE)


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
