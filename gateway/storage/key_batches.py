"""Reads by key that concurrent requests share: one round trip for every key asked for meanwhile.

Under load, a server's round trip costs more than the read itself (a pool connection, the driver's
protocol, the server's own work per statement): requests that each need one row by key wait together and
share one statement. A lookup alone goes out at once; lookups asked for while a batch is on its way go
together in the next one. A batch is sent only after all of its lookups were asked for, so each reads
what was committed before it asked (read-after-write holds across processes).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# At most this many keys in one statement: a batch that large is served as fast as several smaller ones.
MAX_BATCH = 64


class KeyBatches(Generic[K, V]):
    """`get(key)`: the value `fetch_many` finds for the key, or None; its exception if it failed."""

    def __init__(self, fetch_many: Callable[[Sequence[K]], Awaitable[dict[K, V]]], in_flight: int = 1) -> None:
        self._fetch_many = fetch_many
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._in_flight = 0
        self._max_in_flight = in_flight
        self._batches: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak ones)

    async def get(self, key: K) -> V | None:
        answer = self._waiting.get(key)
        if answer is None:
            answer = self._waiting[key] = asyncio.get_running_loop().create_future()
            if self._in_flight < self._max_in_flight:
                self._send()
        # Shielded: a request that goes away must not cancel the answer of the others waiting for the key.
        return await asyncio.shield(answer)

    def _send(self) -> None:
        keys = list(self._waiting)[:MAX_BATCH]
        answers = {key: self._waiting.pop(key) for key in keys}
        self._in_flight += 1
        batch = asyncio.get_running_loop().create_task(self._run(answers))
        self._batches.add(batch)
        batch.add_done_callback(self._batches.discard)

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
        finally:
            self._in_flight -= 1
        if self._waiting and self._in_flight < self._max_in_flight:
            self._send()
