"""SQLite's writers: units of work run to completion on a connection's own thread, queued units sharing one
transaction (group commit); or, for state written without waiting for the disk, inline on the event loop.

A unit awaits nothing but its Db (gateway.storage.db), so its coroutine runs through without suspending:
on the writer thread in a single hop, or on the event loop's thread in microseconds.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.storage.db import T, Unit
from gateway.storage.types import StorageUnavailable

GROUP_COMMIT_MAX = 64  # units sharing one transaction at most: bounds the work a failed commit undoes
# SQLite's own retry of a locked database (busy_timeout) is the gateway's wait; then the database is
# unavailable. So are a full disk and an I/O error: the transaction rolled back, nothing was written.
UNAVAILABLE_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})


def unavailable(error: BaseException) -> BaseException:
    """StorageUnavailable for the failures that mean "not now", the error itself for any other."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(error, sqlite3.OperationalError) and code is not None and code & 0xFF in UNAVAILABLE_CODES:
        return StorageUnavailable(f"SQLite: {error}")
    return error


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

    async def lock(self, name: str, *, wait: bool = True) -> None:
        """Writers are already one at a time (one writer thread, BEGIN IMMEDIATE across processes): no other
        transaction holds anything while this one runs."""

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
    """One thread, one connection; the units queued while a transaction runs make up the next one.

    A unit waits for a database another process has locked for at most the busy timeout from when it was
    queued, not from when its transaction begins: a transaction waits only as long as its first unit may
    (SQLite's busy_timeout, set before each), so that one queued behind a transaction that waited does not
    wait its own timeout again (nearly twice the timeout, in all)."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_seconds: float) -> None:
        self._connection = connection
        self._db = WriterDb(connection)
        self._busy_timeout = busy_timeout_seconds
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._queue: list[tuple[Unit[Any], asyncio.Future[Any], float]] = []  # and when it stops waiting
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, unit: Unit[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((unit, future, loop.time() + self._busy_timeout))
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:GROUP_COMMIT_MAX], self._queue[GROUP_COMMIT_MAX:]
            wait = max(batch[0][2] - loop.time(), 0.0)
            try:
                results = await loop.run_in_executor(self._thread, self._commit, [unit for unit, _, _ in batch], wait)
            except BaseException as failure:  # the commit itself failed: nothing of the batch was written
                results = [(unavailable(failure), None)] * len(batch)
            for (_, future, _), (error, value) in zip(batch, results):
                if future.done():  # its caller went away; the write stands, as a replay will show
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)

    def _commit(self, units: list[Unit[Any]], wait_seconds: float) -> list[_Result]:
        execute = self._connection.execute
        execute(f"PRAGMA busy_timeout = {int(wait_seconds * 1000)}")
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


class InlineWriter:
    """Units run at once on the caller's thread (the event loop's), each in a transaction of its own: for
    state written without waiting for the disk (synchronous=OFF), the rate-limit buckets, where a unit takes
    well under a millisecond and the hop to `fallback`'s thread took 3 to 16 ms on a busy process, during
    which the partner's requests waited (bench/mixed.py). The transaction begins with busy_timeout 0: while
    another connection (another process) writes, the unit goes to `fallback`, which waits within the busy
    timeout, rather than block the event loop."""

    def __init__(self, connection: sqlite3.Connection, fallback: GroupWriter) -> None:
        self._connection = connection
        self._db = WriterDb(connection)
        self._fallback = fallback

    async def write(self, unit: Unit[T]) -> T:
        execute = self._connection.execute
        try:
            execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if unavailable(error) is error:
                raise
            return await self._fallback.write(unit)
        try:
            result = _run_to_completion(unit(self._db))
            execute("COMMIT")
        except BaseException as failure:
            if self._connection.in_transaction:
                execute("ROLLBACK")
            raise unavailable(failure) from failure
        return result

    def close(self) -> None:
        """Its own connection; `fallback` is closed by its owner."""
        self._connection.close()
