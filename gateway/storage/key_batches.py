"""Reads by key that concurrent requests share: one round trip for every key asked for meanwhile.

Under load, a server's round trip costs more than the read itself (a pool connection, the driver's
protocol, the server's own work per statement): requests that each need one row by key wait together and
share one statement. A lookup alone goes out at once. Lookups asked for while a batch is on its way go
together in the next one, which goes out when a batch comes back, or after MAX_WAIT_SECONDS at the latest:
a batch that hangs (a database that stopped answering, retried within the busy timeout) holds up no other.
A batch is sent only after all of its lookups were asked for, so each reads what was committed before it
asked (read-after-write holds across processes). It runs in the context of the request that asked first, so
its waits count against that request's busy timeout (gateway.storage.wait_budget), not against whichever
request sent the batch before it.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# At most this many keys in one statement: a batch that large is served as fast as several smaller ones.
MAX_BATCH = 64
# The longest a lookup waits for the batch before it to come back: a few round trips to a busy server.
MAX_WAIT_SECONDS = 0.002


class KeyBatches(Generic[K, V]):
    """`get(key)`: the value `fetch_many` finds for the key, or None; its exception if it failed."""

    def __init__(self, fetch_many: Callable[[Sequence[K]], Awaitable[dict[K, V]]]) -> None:
        self._fetch_many = fetch_many
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak ones)
        self._timer: asyncio.TimerHandle | None = None
        self._first_asked = contextvars.Context()  # the context of the first lookup waiting

    async def get(self, key: K) -> V | None:
        answer = self._waiting.get(key)
        if answer is None:
            loop = asyncio.get_running_loop()
            if not self._waiting:
                self._first_asked = contextvars.copy_context()
            answer = self._waiting[key] = loop.create_future()
            if not self._in_flight:
                self._send()
            elif self._timer is None:
                self._timer = loop.call_later(MAX_WAIT_SECONDS, self._send)
        # Shielded: a request that goes away must not cancel the answer of the others waiting for the key.
        return await asyncio.shield(answer)

    def _send(self) -> None:
        """Every lookup waiting goes out now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            keys = list(self._waiting)[:MAX_BATCH]
            answers = {key: self._waiting.pop(key) for key in keys}
            batch = asyncio.get_running_loop().create_task(self._run(answers), context=self._first_asked)
            self._in_flight.add(batch)
            batch.add_done_callback(self._done)

    def _done(self, batch: asyncio.Task[None]) -> None:
        self._in_flight.discard(batch)
        if self._waiting and not batch.cancelled():
            self._send()

    async def _run(self, answers: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._fetch_many(list(answers))
        except asyncio.CancelledError:  # the loop is shutting down: nothing waits for anything any more
            for answer in [*answers.values(), *self._waiting.values()]:
                answer.cancel()
            self._waiting.clear()
            raise
        except Exception as error:  # noqa: BLE001 - every request waiting for one of the keys gets it
            for answer in answers.values():
                answer.set_exception(error)
                answer.exception()  # retrieved: a request that went away does not leave it unread
        else:
            for key, answer in answers.items():
                answer.set_result(found.get(key))
