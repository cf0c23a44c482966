"""PostgreSQL backend (asyncpg) for any number of gateway processes on any number of hosts.

Reads go straight to the pool; each write transaction runs on one pooled connection. What must hold
across processes (one order per correlation id, an order read to be written back, returns never exceeding
what remains) takes a transaction-scoped advisory lock named after the key or the order: the database, not
any one process, decides who goes first. Failed attempts are tried again as gateway.storage.pg_retry says.
Connections: gateway.storage.postgres_db; units that share a transaction: gateway.storage.pg_groups;
migrations: gateway.storage.pg_migrations.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gateway.storage.db import Db, T, Unit
from gateway.storage.pg_groups import GroupCommits
from gateway.storage.pg_migrations import migrate
from gateway.storage.pg_retry import ABANDONED, COMMIT, ROLLED_BACK_AT_COMMIT, abandon, remaining, retrying, roll_back
from gateway.storage.postgres_db import PoolReader, PostgresTransaction
from gateway.storage.types import StorageError, StorageUnavailable
from gateway.storage.wait_budget import within

MIN_CONNECT_SECONDS = 1.0
MIN_COMMIT_SECONDS = 1.0  # a COMMIT is the server's write to disk: never cut at once, whatever the busy timeout


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
        self._groups = GroupCommits(lambda unit, seconds: self._write(unit, seconds, once=False, lengthy=False))

    @property
    def reader(self) -> Db:
        return self._pool_db

    async def write(self, unit: Unit[T], *, once: bool = False, lengthy: bool = False, grouped: bool = False) -> T:
        """Retried as a whole while it fails before COMMIT (nothing committed), unless `once`; a COMMIT that
        got no answer is not retried (its outcome is unknown): StorageUnavailable, and the client's retry
        with the same correlation id finds the stored answer if it did commit. Its waits for a connection and
        its statements give up at the busy timeout (what the request has left of it), unless `lengthy`; its
        COMMIT gets what they left of it, at least MIN_COMMIT_SECONDS. `grouped`: with the units queued
        beside it (gateway.storage.pg_groups)."""
        if grouped:
            return await within(self._busy_timeout, lambda seconds: self._groups.write(unit, seconds))
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
