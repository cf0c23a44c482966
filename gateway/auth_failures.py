"""Failed client authentications at the token endpoints, counted per client id and address.

After MAX_FAILURES failures of one client id from one address within WINDOW_SECONDS, further requests of
that client id from that address are refused until the oldest of those failures is WINDOW_SECONDS old.

Counted twice over, for two guarantees:
- in the process's memory, checked and added to with nothing awaited in between: requests sent at once to
  one process cannot all pass the check before the first failure is counted;
- in the database, beside the rate-limit buckets, so that every process on it counts the failures of all:
  a client id cannot try ten times per process. A database out of reach leaves the process's own count.
Client ids are kept as digests; at most MAX_TRACKED pairs are remembered in memory.
"""
from __future__ import annotations

import collections
import math
import time

import structlog
from cachetools import TTLCache

from gateway.credentials import digest
from gateway.storage import Storage, StorageError, StorageUnavailable

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
MAX_TRACKED = 100_000

log = structlog.get_logger("gateway.auth_failures")


class FailedAuthentications:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        # Each pair's last MAX_FAILURES failure times; a pair with none in the window is forgotten.
        self._failures: TTLCache[tuple[str, str], collections.deque[float]] = TTLCache(MAX_TRACKED, WINDOW_SECONDS)

    def retry_after(self, client_id: str, address: str | None) -> int | None:
        """Whole seconds until this client id may try again from this address, by this process's count;
        None when it may now."""
        failures = self._failures.get(_pair(client_id, address))
        if failures is None or len(failures) < MAX_FAILURES:
            return None
        return _wait(failures[0] + WINDOW_SECONDS - time.monotonic())

    async def shared_retry_after(self, client_id: str, address: str | None) -> int | None:
        """The same, by the count of every process on the database."""
        now = time.time()
        try:
            recent = await self._storage.recent_auth_failures(_shared(client_id, address), now - WINDOW_SECONDS,
                                                              MAX_FAILURES)
        except (StorageError, StorageUnavailable) as failure:
            log.warning("auth_failures_unreadable", reason=str(failure))
            return None
        if len(recent) < MAX_FAILURES:
            return None
        return _wait(recent[-1] + WINDOW_SECONDS - now)

    async def record(self, client_id: str, address: str | None) -> None:
        """Counted in this process at once, before anything is awaited; then in the database."""
        pair = _pair(client_id, address)
        failures = self._failures.get(pair) or collections.deque(maxlen=MAX_FAILURES)
        failures.append(time.monotonic())
        self._failures[pair] = failures  # set again: kept for a window after its latest failure
        now = time.time()
        try:
            await self._storage.record_auth_failure(_shared(client_id, address), now, now - WINDOW_SECONDS)
        except (StorageError, StorageUnavailable) as failure:
            log.warning("auth_failure_not_shared", reason=str(failure))


def _wait(seconds: float) -> int | None:
    return max(1, math.ceil(seconds)) if seconds > 0 else None


def _pair(client_id: str, address: str | None) -> tuple[str, str]:
    return digest(client_id), address or ""


def _shared(client_id: str, address: str | None) -> str:
    return "\x1f".join(_pair(client_id, address))
