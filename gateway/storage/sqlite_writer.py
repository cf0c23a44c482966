"""SQLite's writers: units of work run to completion on a connection's own thread, queued units sharing one
transaction (group commit); or, for state written without waiting for the disk, inline on the event loop.

A unit awaits nothing but its Db (gateway.storage.db), so its coroutine runs through without suspending:
on the writer thread in a single hop, or on the event loop's thread in microseconds.
"""
from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.storage.db import T, Unit
from gateway.storage.types import StorageUnavailable
from gateway.storage.wait_budget import within

LOCK_WAIT_SLICE_SECONDS = 0.1  # how often a wait for another process's lock looks whether to go on
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
    keyed_reads_travel = False

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


@dataclasses.dataclass(eq=False)
class _Queued:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    deadline: float  # of the event loop's clock: when its caller stops waiting for a locked database
    started: bool = False  # set on the writer thread, under the writer's lock
    abandoned: bool = False  # set on the event loop, under the same lock: then it never starts


class GroupWriter:
    """One thread, one connection; the units queued while a transaction runs make up the next one.

    A unit waits for a database another process has locked for at most its busy timeout (what its request
    has left of it: gateway.storage.wait_budget) from when it was queued: while its transaction waits for
    that lock, a unit whose time is up is given up (503) and never runs, and the transaction waits (SQLite's
    busy_timeout) as long as its most patient unit may. Time spent behind this process's own transactions (a
    long purge, say) never makes a unit give up: when the database is free, it runs."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_seconds: float) -> None:
        self._connection = connection
        self._db = WriterDb(connection)
        self._busy_timeout = busy_timeout_seconds
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._lock = threading.Lock()
        self._waiting_for_lock = False  # the writer thread waits for another process's lock (under _lock)
        self._queue: list[_Queued] = []
        self._flushing: asyncio.Task[None] | None = None
        self._closing = False

    async def write(self, unit: Unit[T]) -> T:
        return await within(self._busy_timeout, lambda seconds: self._write(unit, seconds))

    async def _write(self, unit: Unit[T], seconds: float) -> T:
        loop = asyncio.get_running_loop()
        queued = _Queued(unit, loop.create_future(), loop.time() + seconds)
        self._queue.append(queued)
        if self._flushing is None or self._flushing.done():
            self._flushing = loop.create_task(self._flush())
        give_up = loop.call_at(queued.deadline, self._give_up, queued)
        try:
            result: T = await queued.future
            return result
        finally:
            give_up.cancel()

    def _give_up(self, queued: _Queued) -> None:
        """At the unit's deadline, or when its transaction starts waiting for the lock past it."""
        with self._lock:
            if queued.started or queued.future.done() or not self._waiting_for_lock:
                return
            queued.abandoned = True
        queued.future.set_exception(StorageUnavailable("SQLite: the database stayed locked past the busy timeout"))

    def _give_up_overdue(self, batch: list[_Queued]) -> None:
        now = asyncio.get_running_loop().time()
        for queued in batch:
            if queued.deadline <= now:
                self._give_up(queued)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:GROUP_COMMIT_MAX], self._queue[GROUP_COMMIT_MAX:]
            wait = max(max(queued.deadline for queued in batch) - loop.time(), 0.0)
            try:
                results = await loop.run_in_executor(self._thread, self._commit, batch, wait, loop)
            except BaseException as failure:  # the commit itself failed: nothing of the batch was written
                results = [(unavailable(failure), None)] * len(batch)
            for queued, (error, value) in zip(batch, results):
                if queued.future.done():  # given up, or its caller went away (a write that stands, then)
                    continue
                if error is not None:
                    queued.future.set_exception(error)
                else:
                    queued.future.set_result(value)

    def _begin(self, batch: list[_Queued], wait_seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        """BEGIN IMMEDIATE: at once when no other process holds the lock; else waiting for it, while the
        units whose time is up (they waited behind this process's transactions) are given up."""
        execute = self._connection.execute
        execute("PRAGMA busy_timeout = 0")
        try:
            execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if unavailable(error) is error:
                raise
        with self._lock:
            self._waiting_for_lock = True
        try:
            loop.call_soon_threadsafe(self._give_up_overdue, batch)
            self._wait_for_lock(time.monotonic() + wait_seconds)
        finally:
            with self._lock:
                self._waiting_for_lock = False

    def _wait_for_lock(self, deadline: float) -> None:
        """BEGIN IMMEDIATE, waiting for another process's lock until `deadline` (monotonic), in slices: a
        process shutting down stops waiting (SQLite's busy wait cannot be interrupted), where it sat out the
        whole busy timeout after its shutdown timeout had cancelled the requests waiting."""
        execute = self._connection.execute
        while True:
            slice_ms = int(max(0.0, min(deadline - time.monotonic(), LOCK_WAIT_SLICE_SECONDS)) * 1000)
            execute(f"PRAGMA busy_timeout = {slice_ms}")
            try:
                execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                # Only a busy database is waited for (in SQLite's busy wait): any other failure is at once.
                busy = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or self._closing or time.monotonic() >= deadline:
                    raise

    def _commit(self, batch: list[_Queued], wait_seconds: float, loop: asyncio.AbstractEventLoop) -> list[_Result]:
        execute = self._connection.execute
        self._begin(batch, wait_seconds, loop)
        try:
            results: list[_Result] = []
            for queued in batch:
                with self._lock:
                    queued.started = not queued.abandoned
                if not queued.started:
                    results.append((None, None))  # its caller has had its 503
                    continue
                execute("SAVEPOINT unit")
                try:
                    results.append((None, _run_to_completion(queued.unit(self._db))))
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
        self._closing = True  # a transaction waiting for another process's lock gives up (_wait_for_lock)
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
