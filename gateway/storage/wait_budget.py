"""One request's failed waits for the database, counted together: the busy timeout bounds them all.

A request may take several steps on the database (its credential, the rate limit's shared bucket, its own
read or write). Each step used to get the whole busy timeout, so with the buckets and the orders both out of
reach a creation waited twice the timeout before its 503. Inside `one_request()` a step that gives up
(StorageUnavailable) charges the time it took to the request, and each later step gets what is left.
Only steps that gave up are charged: a step that is slow but answers (a large customer's count, a pool
busy with other requests) costs the later ones nothing, or a request that must take several slow steps
would fail every time it is resent. Outside a request (the CLI, background work) each step gets the whole
busy timeout.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from gateway.storage.db import T
from gateway.storage.types import StorageUnavailable

# What a step that comes after the request's time is spent still gets: enough to run its statements once on
# a database that answers (the rate limit's take gave up, and the request's own read is quick).
LAST_STEP_SECONDS = 0.2


class _Spent:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


_spent: ContextVar[_Spent | None] = ContextVar("database_wait_spent", default=None)


@contextmanager
def one_request() -> Iterator[None]:
    """The database steps taken inside the block that give up share one busy timeout."""
    token = _spent.set(_Spent())
    try:
        yield
    finally:
        _spent.reset(token)


def charge(seconds: float) -> None:
    """Time the request spent waiting for another request's step that gave up (the one take from the
    partner's bucket, the one load of a customer's history): spent as if the step had been its own."""
    spent = _spent.get()
    if spent is not None:
        spent.seconds += seconds


async def within(busy_timeout_seconds: float, step: Callable[[float], Awaitable[T]]) -> T:
    """Runs `step` with the seconds it may wait: its busy timeout, less what the request's earlier steps
    spent before giving up, and at least LAST_STEP_SECONDS of it. If it gives up too, its time is spent."""
    spent = _spent.get()
    if spent is None:
        return await step(busy_timeout_seconds)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        return await step(max(busy_timeout_seconds - spent.seconds, min(LAST_STEP_SECONDS, busy_timeout_seconds)))
    except StorageUnavailable:
        spent.seconds += loop.time() - started
        raise
