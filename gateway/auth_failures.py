"""Failed client authentications at the token endpoints, counted per client id and address.

After MAX_FAILURES failures of one client id from one address within WINDOW_SECONDS, further requests of
that client id from that address are refused until the oldest of those failures is WINDOW_SECONDS old.
Each process counts its own; client ids are kept as digests, and at most MAX_TRACKED pairs are remembered.
"""
from __future__ import annotations

import collections
import math
import time

from cachetools import TTLCache

from gateway.credentials import digest

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
MAX_TRACKED = 100_000


class FailedAuthentications:
    def __init__(self) -> None:
        # Each pair's last MAX_FAILURES failure times; a pair with none in the window is forgotten.
        self._failures: TTLCache[tuple[str, str], collections.deque[float]] = TTLCache(MAX_TRACKED, WINDOW_SECONDS)

    def retry_after(self, client_id: str, address: str | None) -> int | None:
        """Whole seconds until this client id may try again from this address; None when it may now."""
        failures = self._failures.get(_pair(client_id, address))
        if failures is None or len(failures) < MAX_FAILURES:
            return None
        wait = failures[0] + WINDOW_SECONDS - time.monotonic()
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record(self, client_id: str, address: str | None) -> None:
        pair = _pair(client_id, address)
        failures = self._failures.get(pair) or collections.deque(maxlen=MAX_FAILURES)
        failures.append(time.monotonic())
        self._failures[pair] = failures  # set again: kept for a window after its latest failure


def _pair(client_id: str, address: str | None) -> tuple[str, str]:
    return digest(client_id), address or ""
