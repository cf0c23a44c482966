"""Failed client authentications at the token endpoints, one row each, kept beside the rate-limit buckets
(state that may be lost, never migrated) so that every process on the database counts them together.

A row names its pair (a digest of the client id, and the address); rows older than the window are dropped
by every failure that is recorded, so the table holds at most the last window's failures."""
from __future__ import annotations

from collections.abc import Callable

from gateway.storage.db import Db

FAILURES_TABLES = (
    "CREATE TABLE IF NOT EXISTS auth_failures (pair TEXT NOT NULL, failed_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS auth_failures_by_pair ON auth_failures (pair, failed_at)",
    "CREATE INDEX IF NOT EXISTS auth_failures_by_time ON auth_failures (failed_at)",
)

RECENT_FAILURES = "SELECT failed_at FROM auth_failures WHERE pair = ? AND failed_at > ? ORDER BY failed_at DESC LIMIT ?"


async def recent_failures(db: Db, pair: str, since: float, most: int) -> list[float]:
    """The pair's latest `most` failures after `since`, newest first."""
    return [float(row[0]) for row in await db.fetch(RECENT_FAILURES, (pair, since, most))]


DROP_FAILURES_BEFORE = "DELETE FROM auth_failures WHERE failed_at <= ?"
ADD_FAILURE = "INSERT INTO auth_failures (pair, failed_at) VALUES (?, ?)"


async def attempt(db: Db, pair: str, now: float, window: float, most: int,
                  verify: Callable[[], bool]) -> tuple[float | None, bool]:
    """One authentication of the pair, under the pair's lock: (seconds to wait, False) when it has `most`
    failures in the window; else (None, whether `verify()` holds), a failure recorded. Attempts of the pair
    in any process take turns, each counting every failure before it."""
    await db.lock(f"auth\x1f{pair}")
    recent = await recent_failures(db, pair, now - window, most)
    if len(recent) >= most:
        return recent[-1] + window - now, False
    if verify():
        return None, True
    await db.execute(DROP_FAILURES_BEFORE, (now - window,))
    await db.execute(ADD_FAILURE, (pair, now))
    return None, False
