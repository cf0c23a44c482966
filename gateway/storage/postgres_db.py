"""PostgreSQL connections as the shared SQL uses them (gateway.storage.db): single statements, a unit's
transaction on one connection, and reads on the pool retried within the busy timeout.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from gateway.storage.pg_retry import ABANDONED, remaining, retrying
from gateway.storage.types import LockHeld, StorageBusy
from gateway.storage.wait_budget import within

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

    @property
    def connection(self) -> Any:
        return self._connection

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def deadline(self) -> float | None:
        return self._deadline

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

    def kept(self) -> dict[str, list[Sequence[Any]]]:
        """The statements kept for last, with their rows."""
        return self._last

    async def finish(self) -> None:
        """Runs the statements kept for last, each once for all its rows, in the order each was first kept;
        the caller commits next."""
        last, self._last = self._last, {}
        for sql, rows in last.items():
            await self.executemany(sql, rows)

    def _preamble(self) -> str:
        """What goes out before the unit's first statement."""
        return BEGIN

    async def _begin(self) -> None:
        if not self.begun:
            self.begun = True
            await self._connection.execute(self._preamble(), timeout=self._timeout())

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
        return f"{self._preamble()}; {statement}"


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
