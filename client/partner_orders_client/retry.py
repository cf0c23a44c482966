"""When to try a call again, and how long to wait first.

Retried: no answer at all (connection refused or dropped, timeout), `409 4122` (the same correlation id is
still executing), `429` and every `5xx`. Everything else is the answer: a `4xx` would only be repeated.
Retrying a write is safe because every attempt carries the same `X-Correlation-Id`: the gateway executes it
once and replays the stored answer to the others.
"""
from __future__ import annotations

import datetime
import email.utils
import math
import random
from dataclasses import dataclass

from partner_orders_client.wire import Answer, Failure, Reply, error_code

TOO_MANY_REQUESTS = 429
CONFLICT = 409
STILL_EXECUTING = "4122"  # 409: the first request with this correlation id has not finished yet


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (each wait drawn from 0 up to the doubled ceiling), so that many
    clients refused at once do not come back at once; never shorter than the server's `Retry-After`."""

    max_retries: int = 5  # attempts after the first; 0 sends each request once
    base_delay: float = 0.5  # seconds: the ceiling of the first wait
    max_delay: float = 30.0  # seconds: the ceiling's ceiling
    # A server asking for a longer pause than this is answered with the error now rather than a call that
    # blocks for minutes without saying why.
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError(f"retry settings cannot be negative: {self}")

    def delay(self, reply: Reply, retries_done: int) -> float | None:
        """Seconds to wait before the next attempt, or None when this reply is final."""
        if retries_done >= self.max_retries or not retryable(reply):
            return None
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2**retries_done))
        asked = retry_after(reply)
        if asked is None:
            return backoff
        if asked > self.max_retry_after:
            return None
        return max(asked, backoff)


def retryable(reply: Reply) -> bool:
    if isinstance(reply, Failure):
        return True
    if reply.status == TOO_MANY_REQUESTS or reply.status >= 500:
        return True
    return reply.status == CONFLICT and error_code(reply) == STILL_EXECUTING


def retry_after(reply: Reply) -> float | None:
    """The `Retry-After` of an answer in seconds: the gateway sends whole seconds, and a proxy or load
    balancer in front of it may send an HTTP date (RFC 9110 10.2.3), waited for until then."""
    if not isinstance(reply, Answer):
        return None
    value = reply.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _until(value)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, OverflowError):  # not a date, or a year no clock reaches
        return None
    if when.tzinfo is None:  # "-0000": UTC, as an HTTP date always is
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds(), 0.0)
