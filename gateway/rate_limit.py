"""Each partner's token bucket, shared by all its credentials and by every process on the database.

The bucket is a row in the database; a process takes tokens from it in leases, so that most requests cost
no database write:
- A lease is the request's own token, plus at most a quarter of what the bucket holds beyond it and at most
  a tenth of a second of refill. With 4 tokens or fewer left, every request takes exactly its own token.
- A lease not spent within a second goes back to the bucket with the process's next take (the bucket never
  holds more than its burst).
- Every admitted request spent a token taken from the shared bucket: across all processes a partner is
  admitted at most `burst + rate × t` requests in any `t` seconds. The bucket refills by each process's wall
  clock: hosts whose clocks differ by `s` seconds can add at most `rate × s` once.
- Tokens leased but not yet spent are the only ones another process cannot use: at most a quarter of the
  bucket per take, and none near the limit, so a partner sending at half its rate is not refused.
- A process that found the bucket empty refuses the partner without asking again until a token is due (at
  most a second): a flood of refused requests costs one take per process per second.
- While the database cannot be reached, each process admits up to the partner's rate per second on its own,
  and asks the bucket again only every few seconds: one request waits the busy timeout for it, not every one.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import structlog

from gateway.storage import Bucket, RateOverride, Storage, StorageError, StorageUnavailable
from gateway.storage.wait_budget import charge

LEASE_SECONDS = 1.0
LEASE_SHARE = 4
LEASE_REFILL_SECONDS = 0.1
REFUSAL_MEMORY_SECONDS = 1.0
MIN_REFUSAL_SECONDS = 0.001
# After a take that found the bucket out of reach, leases are made up locally for this long before the bucket is
# asked again: each ask may wait the whole busy timeout, and the requests of the partner wait with it.
UNREACHABLE_RETRY_SECONDS = 5.0

log = structlog.get_logger("gateway.rate_limit")


@dataclasses.dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int


@dataclasses.dataclass(frozen=True)
class Lease:
    granted: int
    left: float  # what the shared bucket holds after the take


def limit_in_force(override: RateOverride, default: Limit) -> Limit:
    """A partner's own limit where `partners set-rate-limit` gave one, else the configured default."""
    return Limit(override.per_second or default.per_second, override.burst or default.burst)


def refilled(bucket: Bucket | None, limit: Limit, now: float) -> Bucket:
    """The bucket (a full one before the partner's first request) refilled to `now` at the limit's rate."""
    if bucket is None:
        return Bucket(float(limit.burst), now)
    updated = max(bucket.updated, now)  # a clock behind the last take's refills nothing
    return Bucket(min(float(limit.burst), bucket.tokens + (updated - bucket.updated) * limit.per_second), updated)


def draw(bucket: Bucket | None, limit: Limit, now: float, returned: int) -> tuple[Bucket, Lease]:
    """The bucket refilled to `now` (plus `returned` unspent tokens), less the lease it grants."""
    bucket = refilled(bucket, limit, now)
    tokens, updated = min(float(limit.burst), bucket.tokens + returned), bucket.updated
    if tokens < 1:
        return Bucket(tokens, updated), Lease(0, tokens)
    granted = 1 + min(int((tokens - 1) / LEASE_SHARE), int(limit.per_second * LEASE_REFILL_SECONDS))
    return Bucket(tokens - granted, updated), Lease(granted, tokens - granted)


@dataclasses.dataclass(slots=True)
class Decision:
    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


@dataclasses.dataclass
class _Allowance:
    """One partner's tokens as this process knows them."""

    limit: Limit | None = None  # the limit its lease was taken under
    held: int = 0
    shared: bool = True  # the lease came from the shared bucket (not made up while it was out of reach)
    lease_ends: float = 0.0  # monotonic, like every time below
    level: float = 0.0  # what the shared bucket held at `seen_at`
    seen_at: float = 0.0
    refused_until: float = 0.0
    ask_again_at: float = 0.0  # while the lease is made up: when to try the shared bucket again
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    def spend(self, limit: Limit, now: float) -> Decision | None:
        """A token of the lease, a refusal while the bucket is known to be empty, or None: ask the bucket."""
        if limit != self.limit:
            return None
        if self.held > 0 and now < self.lease_ends:
            self.held -= 1
            return self._decision(limit, now, admitted=True)
        if now < self.refused_until:
            return self._decision(limit, now, admitted=False)
        return None

    def renew(self, limit: Limit, lease: Lease, now: float, shared: bool = True) -> None:
        self.limit, self.held, self.lease_ends, self.shared = limit, lease.granted, now + LEASE_SECONDS, shared
        self.level, self.seen_at = lease.left, now
        # At least a millisecond: `now` plus a wait too small for its precision would be `now` again.
        wait = max((1 - lease.left) / limit.per_second, MIN_REFUSAL_SECONDS)
        if lease.granted == 0:
            self.refused_until = now + min(wait, REFUSAL_MEMORY_SECONDS)
        else:
            # A made-up lease is the rate of its whole second: spent sooner, the partner waits for the next.
            self.refused_until = 0.0 if shared else self.lease_ends

    def _decision(self, limit: Limit, now: float, admitted: bool) -> Decision:
        level = min(float(limit.burst), self.level + (now - self.seen_at) * limit.per_second)
        # Admitted: what the partner had before this request's token (the lease's included, at most the burst),
        # less that token, as a bucket that had taken it would say.
        left = min(float(limit.burst), level + self.held + 1) - 1 if admitted else max(0.0, level)
        return Decision(
            admitted=admitted,
            limit=limit.burst,
            remaining=int(left),
            reset_seconds=math.ceil((limit.burst - left) / limit.per_second),
            retry_after_seconds=max(1, math.ceil((1 - level) / limit.per_second)),
        )


def _made_up(limit: Limit) -> Lease:
    """The partner's rate for one lease, admitted by this process alone."""
    return Lease(max(1, int(limit.per_second * LEASE_SECONDS)), 0.0)


async def change_limit(storage: Storage, partner_id: str, override: RateOverride, default: Limit) -> None:
    """`partners set-rate-limit`. The partner's bucket is first refilled to now at the limit in force until
    now: the next take would have refilled all the time since the last one at the new rate, taking tokens
    already earned from a partner whose rate was lowered. StorageError for an unknown partner."""
    if not await storage.partner_exists(partner_id):
        raise StorageError(f"no partner {partner_id!r}")
    before = limit_in_force(await storage.rate_override(partner_id), default)
    if before.per_second > 0:  # else no limit was in force, and the bucket was not kept
        wall = time.time()
        await storage.take_tokens(partner_id, lambda bucket: (refilled(bucket, before, wall), None))
    await storage.set_rate_override(partner_id, override)


class RateLimiter:
    def __init__(self, storage: Storage, default: Limit, overrides_ttl_seconds: float) -> None:
        self._storage = storage
        self._default = default
        # A partner's override is read again after this long: `partners set-rate-limit` reaches running servers.
        self._overrides_ttl = overrides_ttl_seconds
        # Both keyed by partner id: as many entries as partners that sent a request authenticated as theirs.
        self._limits: dict[str, tuple[float, Limit]] = {}  # (read again at, limit)
        self._allowances: dict[str, _Allowance] = {}

    def spend_held(self, partner_id: str) -> Decision | None:
        """The answer from this process's memory alone (the common case, no await), or None: call `admit`."""
        known = self._limits.get(partner_id)
        allowance = self._allowances.get(partner_id)
        now = time.monotonic()
        if known is None or allowance is None or known[0] <= now:
            return None
        return allowance.spend(known[1], now)

    async def admit(self, partner_id: str) -> Decision:
        """Takes one of the partner's tokens, or says when there will be one."""
        limit = await self._limit(partner_id)
        allowance = self._allowances.get(partner_id)
        if allowance is None:
            allowance = self._allowances[partner_id] = _Allowance()
        decision = allowance.spend(limit, time.monotonic())
        if decision is not None:
            return decision
        queued = time.monotonic()
        async with allowance.lock:  # one take at a time per partner: the others spend what it brought
            if not allowance.shared:
                charge(time.monotonic() - queued)  # the take it waited for gave up
            decision = allowance.spend(limit, time.monotonic())
            if decision is None:
                lease, shared = await self._lease(partner_id, limit, allowance)
                now = time.monotonic()  # after the take: a lease that came late still lasts its whole second
                allowance.renew(limit, lease, now, shared)
                decision = allowance.spend(limit, now)
        assert decision is not None, "a renewed allowance admits or refuses"
        return decision

    async def _lease(self, partner_id: str, limit: Limit, allowance: _Allowance) -> tuple[Lease, bool]:
        """A lease from the shared bucket (True), or one made up while the bucket is out of reach (False)."""
        if not allowance.shared and time.monotonic() < allowance.ask_again_at:
            return _made_up(limit), False
        returned = allowance.held if allowance.shared else 0  # made-up tokens never enter the bucket
        wall = time.time()
        try:
            lease = await self._storage.take_tokens(partner_id, lambda bucket: draw(bucket, limit, wall, returned))
            return lease, True
        except StorageUnavailable as failure:
            log.warning("rate_limit_not_shared", partner_id=partner_id, reason=str(failure))
            allowance.ask_again_at = time.monotonic() + UNREACHABLE_RETRY_SECONDS
            return _made_up(limit), False

    async def _limit(self, partner_id: str) -> Limit:
        known = self._limits.get(partner_id)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        limit = limit_in_force(await self._storage.rate_override(partner_id), self._default)
        self._limits[partner_id] = (time.monotonic() + self._overrides_ttl, limit)
        return limit
