"""What PostgreSQL failures mean to the gateway, how long a failed attempt is tried again, and what becomes
of its connection."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from gateway.storage.db import T
from gateway.storage.types import StorageBusy, StorageUnavailable

# Failures after which the statement did not take effect, or its transaction was rolled back: the server
# cannot be reached or went away (terminated backend, restart, failover to a standby), it is out of
# connections or resources, or it chose this transaction as a serialization or deadlock victim.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # "connection is closed" after a loss
    asyncpg.exceptions.InternalClientError,  # "another operation is in progress": a connection broken by a loss
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InsufficientResourcesError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.ReadOnlySQLTransactionError,
)
# The server gave up on a statement (a `statement_timeout` or `lock_timeout` set in the database URL or on
# the role, an operator's pg_cancel_backend): its transaction is rolled back and the connection is fine.
GAVE_UP: tuple[type[BaseException], ...] = (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
# Retried as they are, and a lock that gave way (its connection is fine).
RETRIED: tuple[type[BaseException], ...] = (*TRANSIENT, *GAVE_UP, StorageBusy)
# After these a connection's state is unknown (a lost server, or a statement cancelled midway): it is closed.
ABANDONED: tuple[type[BaseException], ...] = (*TRANSIENT, asyncio.CancelledError)
# What COMMIT's own work (gateway.storage.commit_order) may answer: the server answered, and the transaction
# was rolled back, so the unit may run again (not after COMMIT got no answer at all: its outcome is unknown).
ROLLED_BACK_AT_COMMIT: tuple[type[BaseException], ...] = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
FIRST_RETRY_SECONDS = 0.05
# What a statement, or a wait for a connection, gets when its deadline is (nearly) past.
MIN_WAIT_SECONDS = 0.05
LAST_RETRY_SECONDS = 0.5


async def retrying(attempt: Callable[[], Awaitable[T]], busy_timeout_seconds: float) -> T:
    """`attempt` again after a transient failure (with a growing pause) until it succeeds or the busy
    timeout has passed; then StorageUnavailable. Only for attempts that took no effect when they failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout_seconds
    pause = FIRST_RETRY_SECONDS
    while True:
        try:
            return await attempt()
        except RETRIED as failure:
            if loop.time() + pause > deadline:
                raise StorageUnavailable(f"PostgreSQL: {type(failure).__name__}") from failure
        await asyncio.sleep(pause)
        pause = min(2 * pause, LAST_RETRY_SECONDS)


def remaining(deadline: float | None) -> float | None:
    """The time left until a deadline of the event loop's clock (None: none), at least MIN_WAIT_SECONDS."""
    return None if deadline is None else max(deadline - asyncio.get_running_loop().time(), MIN_WAIT_SECONDS)


# How long a statement cut at its deadline may take to be cancelled on the server, and its transaction to end.
CANCEL_SECONDS = 0.5


async def abandon(connection: asyncpg.Connection, failure: BaseException) -> None:
    """The connection of a unit that failed midway. A statement cut at its deadline still runs on the server
    (waiting for a lock, say), and its transaction keeps what it locked, the correlation id's claim included:
    the driver has asked the server to cancel it, and a ROLLBACK waits for that, then ends the transaction.
    Closed at once, the connection would drop that request, and the server would go on. After any other
    failure, or when the ROLLBACK gets no answer either (a server that stopped answering), it is closed."""
    if isinstance(failure, asyncio.TimeoutError) and not connection.is_closed():
        try:
            await connection.execute(ROLLBACK, timeout=CANCEL_SECONDS)
            return
        except Exception:
            pass
        except BaseException:
            connection.terminate()
            raise
    connection.terminate()


async def roll_back(connection: asyncpg.Connection, timeout: float | None) -> None:
    """Ends the transaction a unit left open; a connection that cannot even do that is closed instead."""
    if connection.is_closed() or not connection.is_in_transaction():
        return
    try:
        await connection.execute(ROLLBACK, timeout=timeout)
    except BaseException:
        connection.terminate()
        raise
