"""PostgreSQL backend (asyncpg) for any number of gateway processes on any number of hosts.

Reads go straight to the pool; each write transaction runs on one pooled connection. What must hold
across processes (one order per correlation id, an order read to be written back, returns never exceeding
what remains) takes a transaction-scoped advisory lock named after the key or the order: the database, not
any one process, decides who goes first. Failed attempts are tried again as gateway.storage.pg_retry says.
Migrations: gateway.storage.pg_migrations.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from gateway.storage.db import Db, T, Unit
from gateway.storage.pg_retry import ABANDONED, COMMIT, ROLLED_BACK_AT_COMMIT, abandon, remaining, retrying, roll_back
from gateway.storage.pg_migrations import migrate
from gateway.storage.types import LockHeld, StorageBusy, StorageError, StorageUnavailable
from gateway.storage.wait_budget import within

MIN_CONNECT_SECONDS = 1.0
MIN_COMMIT_SECONDS = 1.0  # a COMMIT is the server's write to disk: never cut at once, whatever the busy timeout
_NUMBERED = re.compile(r"\?(\d+)")

@functools.lru_cache(maxsize=512)
def to_postgres(sql: str) -> str:
    """`?1` becomes `$1`; bare `?` are numbered in order."""
    if _NUMBERED.search(sql):
        return _NUMBERED.sub(r"$\1", sql)
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


def _affected(status: str) -> int:
    """asyncpg answers "UPDATE 3", "DELETE 0", "INSERT 0 1": the last word counts the rows."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDb:
    writable_ctes = True
    commits_in_order = False
    keyed_reads_travel = True

    def __init__(self, connection: asyncpg.Connection | asyncpg.Pool, deadline: float | None = None,
                 schema: str = "") -> None:
        self._connection = connection
        # When its statements give up (the event loop's clock): the driver then cancels the statement on the
        # server and raises TimeoutError. A server that keeps a connection open and never answers cannot hold
        # a request for ever. None: a unit that may take long by design (an import, a purge).
        self._deadline = deadline
        # Advisory locks belong to the database, and one database may hold several deployments, one schema
        # each: a lock is named within its schema.
        self._schema = schema

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if any(isinstance(param, str) and "\x00" in param for param in params):
            return []  # PostgreSQL text cannot hold NUL, so nothing stored matches (and the driver would refuse)
        rows = await self._connection.fetch(to_postgres(sql), *params, timeout=self._timeout())
        return [tuple(row) for row in rows]

    def _timeout(self) -> float | None:
        return remaining(self._deadline)

    async def fetch_by_key(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.fetch(sql, params)  # a round trip like any other

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _affected(await self._connection.execute(to_postgres(sql), *params, timeout=self._timeout()))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            await self._connection.executemany(to_postgres(sql), rows, timeout=self._timeout())

    # Only the integer key is inlined: a simple query, so that a transaction's BEGIN can go out with it.
    LOCK = "SELECT pg_advisory_xact_lock({key:d})"
    # Not waiting: under a lock timeout of 1 ms for this statement alone, a held lock is an error (55P03).
    LOCK_NOW = f"SET LOCAL lock_timeout = 1; {LOCK}; SET LOCAL lock_timeout TO DEFAULT"

    async def lock(self, name: str, *, wait: bool = True) -> None:
        statement = (self.LOCK if wait else self.LOCK_NOW).format(key=lock_key(self._schema, name))
        try:
            await self._connection.execute(self._opening(statement), timeout=self._timeout())
        except asyncpg.LockNotAvailableError:
            if wait:
                raise  # a lock_timeout of the server's: waited for, then given up (pg_retry.GAVE_UP)
            raise LockHeld() from None

    def _opening(self, statement: str) -> str:
        return statement  # outside a transaction

    async def lock_shared(self, name: str) -> None:
        key = lock_key(self._schema, name)
        if not await self._connection.fetchval("SELECT pg_try_advisory_xact_lock_shared($1)", key,
                                               timeout=self._timeout()):
            raise StorageBusy(name)

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise TypeError("only a transaction has a last statement")


def lock_key(schema: str, name: str) -> int:
    """The advisory lock of a name in a schema: the same signed 64-bit key in every process (blake2b, not
    `hash`)."""
    named = f"{schema}\x1f{name}".encode()
    return int.from_bytes(hashlib.blake2b(named, digest_size=8).digest(), "big", signed=True)


BEGIN = "BEGIN"


class PostgresTransaction(PostgresDb):
    """A write on one connection. BEGIN goes out with its first statement when that is a lock (one simple
    query, one round trip), else on its own just before; a unit that ran no statement sends nothing."""

    def __init__(self, connection: asyncpg.Connection, schema: str, deadline: float | None) -> None:
        super().__init__(connection, deadline, schema)
        self.begun = False
        self._last: dict[str, list[Sequence[Any]]] = {}

    async def execute_last(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._last.setdefault(sql, []).extend(rows)

    async def finish(self) -> None:
        """Runs the statements kept for last, each once for all its rows, in the order each was first kept;
        the caller commits next."""
        last, self._last = self._last, {}
        for sql, rows in last.items():
            await self.executemany(sql, rows)

    async def _begin(self) -> None:
        if not self.begun:
            self.begun = True
            await self._connection.execute(BEGIN, timeout=self._timeout())

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        await self._begin()
        return await super().fetch(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._begin()
        return await super().execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._begin()
        await super().executemany(sql, rows)

    async def lock_shared(self, name: str) -> None:
        await self._begin()
        await super().lock_shared(name)

    def _opening(self, statement: str) -> str:
        if self.begun:
            return statement
        self.begun = True
        return f"{BEGIN}; {statement}"


class PoolReader(PostgresDb):
    """Single reads on the pool, retried after a transient failure within the busy timeout."""

    def __init__(self, pool: asyncpg.Pool, busy_timeout_seconds: float) -> None:
        super().__init__(pool)
        self._pool = pool
        self._busy_timeout = busy_timeout_seconds

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await within(self._busy_timeout, lambda seconds: self._fetch(sql, params, seconds))

    async def _fetch(self, sql: str, params: Sequence[Any], seconds: float) -> list[Any]:
        deadline = asyncio.get_running_loop().time() + seconds
        return await retrying(lambda: self._fetch_once(sql, params, deadline), seconds)

    async def _fetch_once(self, sql: str, params: Sequence[Any], deadline: float) -> list[Any]:
        """Waits for a connection and for the statement only until the deadline (a server that takes
        connections but does not answer); the driver's own timeouts, which give a connection back."""
        async with self._pool.acquire(timeout=remaining(deadline)) as connection:
            try:
                return await PostgresDb(connection, deadline).fetch(sql, params)
            except ABANDONED:
                # A loss or a cancelled statement leaves the connection in a state nobody knows: closed, the
                # server ends whatever it was doing, and the pool opens a fresh one.
                connection.terminate()
                raise


def _commit_timeout(deadline: float | None) -> float | None:
    """What the unit's statements left of its deadline, and never less than MIN_COMMIT_SECONDS."""
    return None if deadline is None else max(deadline - asyncio.get_running_loop().time(), MIN_COMMIT_SECONDS)


class _CommitFailed(Exception):
    """COMMIT was sent and no answer came: the transaction may or may not have committed."""


class PostgresBackend:
    def __init__(self, pool: asyncpg.Pool, busy_timeout_seconds: float, schema: str) -> None:
        self._pool = pool
        self._pool_db = PoolReader(pool, busy_timeout_seconds)
        self._busy_timeout = busy_timeout_seconds
        self._schema = schema

    @property
    def reader(self) -> Db:
        return self._pool_db

    async def write(self, unit: Unit[T], *, once: bool = False, lengthy: bool = False) -> T:
        """Retried as a whole while it fails before COMMIT (nothing committed), unless `once`; a COMMIT that
        got no answer is not retried (its outcome is unknown): StorageUnavailable, and the client's retry
        with the same correlation id finds the stored answer if it did commit. Its waits for a connection and
        its statements give up at the busy timeout (what the request has left of it), unless `lengthy`; its
        COMMIT gets what they left of it, at least MIN_COMMIT_SECONDS."""
        return await within(self._busy_timeout, lambda seconds: self._write(unit, seconds, once, lengthy))

    async def _write(self, unit: Unit[T], seconds: float, once: bool, lengthy: bool) -> T:
        deadline = None if lengthy else asyncio.get_running_loop().time() + seconds
        try:
            # Once: no time left for a second attempt, so its first failure is StorageUnavailable.
            return await retrying(lambda: self._write_once(unit, deadline), 0.0 if once else seconds)
        except _CommitFailed as unknown:
            raise StorageUnavailable("PostgreSQL: no answer to COMMIT") from unknown.__cause__

    async def _write_once(self, unit: Unit[T], deadline: float | None) -> T:
        async with self._pool.acquire(timeout=remaining(deadline)) as connection:
            transaction = PostgresTransaction(connection, self._schema, deadline)
            try:
                result = await unit(transaction)
                await transaction.finish()
            except ABANDONED as failure:
                await abandon(connection, failure)
                raise
            except BaseException:
                await roll_back(connection, remaining(deadline))
                raise
            if transaction.begun:
                try:
                    await connection.execute(COMMIT, timeout=_commit_timeout(deadline))
                except ROLLED_BACK_AT_COMMIT:
                    raise  # the server answered: nothing committed, and the unit may run again
                except ABANDONED as failure:
                    # A COMMIT cut at its deadline (waiting for the events' lock, say) is cancelled on the server
                    # too: left waiting, it committed later, with the key claimed until then (resends 4122).
                    await abandon(connection, failure)
                    if isinstance(failure, asyncio.CancelledError):
                        raise
                    raise _CommitFailed() from failure
            return result

    async def write_buckets(self, unit: Unit[T]) -> T:
        """The buckets are a table of the same database, each take a short transaction of its own."""
        return await self.write(unit)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A released connection goes back to the pool as it is, without asyncpg's reset query (a round trip per
    statement on the pool, per write): no session state outlives its use here (locks are transaction-scoped,
    no SET, LISTEN or cursor), and asyncpg still rolls back a transaction left open."""


@asynccontextmanager
async def open_postgres(url: str, min_size: int = 1, max_size: int = 10,
                        busy_timeout_seconds: float = 5.0) -> AsyncIterator[PostgresBackend]:
    # A new connection gives up after the busy timeout (asyncpg's default is 60 s): a server that takes
    # connections but does not answer gets its 503 in time. Never sooner than a connection can be made: a
    # busy timeout of 0 (no waiting) must still connect.
    pool = asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_keep_session,
                               timeout=max(busy_timeout_seconds, MIN_CONNECT_SECONDS))
    try:
        await pool  # its first connections
    except asyncpg.PostgresError as refused:  # the server answered: no such database or role, a bad password
        raise StorageError(f"PostgreSQL refused the connection: {refused}") from None
    try:
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
                schema = await connection.fetchval("SELECT current_schema()")
        except asyncpg.PostgresError as refused:  # no schema to create in, no right to: say so in a line
            raise StorageError(f"PostgreSQL refused the schema's migration: {refused}") from None
        yield PostgresBackend(pool, busy_timeout_seconds, str(schema))
    finally:
        # Every connection is back by now (the requests ended); one that is not, say stuck on a server that
        # stopped answering, must not keep the process from stopping.
        try:
            await asyncio.wait_for(pool.close(), busy_timeout_seconds)
        except asyncio.TimeoutError:
            pool.terminate()
