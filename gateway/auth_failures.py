"""Failed client authentications at the token endpoints, counted per client id and address.

After MAX_FAILURES failures of one client id from one address within WINDOW_SECONDS, further requests of
that client id from that address are refused until the oldest of those failures is WINDOW_SECONDS old.

The count is kept in the database, beside the rate-limit buckets, so that every process on it counts the
failures of all: attempts of one pair take turns, one at a time in a process and under the pair's lock in
the database, so that each sees every failure before it, however many arrive at once. A process also counts
its own in memory: a locked-out client id is refused without asking the database, and while the database
is out of reach that count alone applies. Client ids are kept as digests; at most MAX_TRACKED pairs are
remembered in memory.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

import structlog
from cachetools import TTLCache

from gateway.credentials import digest
from gateway.storage import Storage, StorageUnavailable

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
MAX_TRACKED = 100_000

log = structlog.get_logger("gateway.auth_failures")


class LockedOut(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(f"locked out for {seconds} s")
        self.seconds = seconds  # until the client id may try again from the address


class FailedAuthentications:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        # Each pair's last MAX_FAILURES failure times; a pair with none in the window is forgotten.
        self._failures: TTLCache[tuple[str, str], collections.deque[float]] = TTLCache(MAX_TRACKED, WINDOW_SECONDS)
        # The pairs with attempts under way in this process: each pair's turn, and how many wait for it.
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def retry_after(self, client_id: str, address: str | None) -> int | None:
        """Whole seconds until this client id may try again from this address, by this process's count;
        None when it may now."""
        failures = self._failures.get(_pair(client_id, address))
        if failures is None or len(failures) < MAX_FAILURES:
            return None
        return _whole(failures[0] + WINDOW_SECONDS - time.monotonic())

    async def shared_retry_after(self, client_id: str, address: str | None) -> int | None:
        """The same, by the count of every process on the database (None when it cannot be read)."""
        now = time.time()
        try:
            recent = await self._storage.recent_auth_failures(_shared(client_id, address), now - WINDOW_SECONDS,
                                                              MAX_FAILURES)
        except StorageUnavailable as failure:
            log.warning("auth_failures_unreadable", reason=str(failure))
            return None
        return _whole(recent[-1] + WINDOW_SECONDS - now) if len(recent) >= MAX_FAILURES else None

    async def attempt(self, client_id: str, address: str | None, verify: Callable[[], bool]) -> bool:
        """Whether `verify()` holds (a failure is counted when not); LockedOut when the pair is locked out."""
        pair = _pair(client_id, address)
        async with self._turn(pair):
            try:
                wait, verified = await self._storage.authentication_attempt(
                    _shared(client_id, address), time.time(), WINDOW_SECONDS, MAX_FAILURES, verify)
            except StorageUnavailable as failure:
                log.warning("auth_failures_unreachable", reason=str(failure))
                wait = self.retry_after(client_id, address)
                verified = wait is None and verify()
            if wait is not None:
                raise LockedOut(_whole(wait) or 1)
            if not verified:
                failures = self._failures.get(pair) or collections.deque(maxlen=MAX_FAILURES)
                failures.append(time.monotonic())
                self._failures[pair] = failures  # set again: kept for a window after its latest failure
            return verified

    @contextlib.asynccontextmanager
    async def _turn(self, pair: tuple[str, str]) -> AsyncIterator[None]:
        """One attempt of a pair at a time in this process: those waiting hold no database connection."""
        lock, waiting = self._turns.get(pair, (asyncio.Lock(), 0))
        self._turns[pair] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._turns[pair]
            if waiting == 1:
                del self._turns[pair]
            else:
                self._turns[pair] = (lock, waiting - 1)


def _whole(seconds: float) -> int | None:
    return max(1, math.ceil(seconds)) if seconds > 0 else None


def _pair(client_id: str, address: str | None) -> tuple[str, str]:
    return digest(client_id), address or ""


def _shared(client_id: str, address: str | None) -> str:
    return "\x1f".join(_pair(client_id, address))
