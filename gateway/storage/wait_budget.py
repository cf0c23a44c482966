"""One request's waits for the database, counted together: the busy timeout bounds them all, not each.

A request may take several steps on the database (its credential, the rate limit's shared bucket, its own
read or write). Each step used to get the whole busy timeout, so a database that stopped answering held a
request for two or three times it before the 503. Inside `one_request()` every step gets what the earlier
ones left: the time spent in them, not the request's wall time (a body that arrives slowly spends none).
Outside it (the CLI, background work) each step gets the whole busy timeout.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from gateway.storage.db import T

# What a step that comes after the request's time is spent still gets: enough to run its statements once on
# a database that answers (a rate limit's take gave up, and the request's own read is quick).
LAST_STEP_SECONDS = 0.2


class _Spent:
    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds = 0.0


_spent: ContextVar[_Spent | None] = ContextVar("database_wait_spent", default=None)


@contextmanager
def one_request() -> Iterator[None]:
    """The database steps taken inside the block share one busy timeout."""
    token = _spent.set(_Spent())
    try:
        yield
    finally:
        _spent.reset(token)


async def within(busy_timeout_seconds: float, step: Callable[[float], Awaitable[T]]) -> T:
    """Runs `step` with the seconds it may wait (its busy timeout, less what the request's earlier steps
    spent, and at least LAST_STEP_SECONDS of it) and counts the time it took against the request."""
    spent = _spent.get()
    if spent is None:
        return await step(busy_timeout_seconds)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        return await step(max(busy_timeout_seconds - spent.seconds, min(LAST_STEP_SECONDS, busy_timeout_seconds)))
    finally:
        spent.seconds += loop.time() - started
