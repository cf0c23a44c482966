"""The delivery worker each gateway process runs: calls webhooks with their due deliveries, records each
attempt's outcome under its claim (gateway.storage.webhooks), and plans the retries.

Work goes in lanes: a lane belongs to one webhook and makes one call at a time, taking the webhook's next
due delivery in the same transaction that records the last one's outcome, until none is due. Rounds start
lanes: at most `webhook_concurrency` in the process and `webhook_endpoint_concurrency` per webhook, dealt
one at a time to the webhooks with the fewest lanes first. When every slot is taken and a webhook with
deliveries due has no lane, running lanes end after their call to make way for it: slow or dead endpoints
with a backlog hold up another webhook for one call at most, not until their backlog is through (nor the
API: calls are plain tasks on the event loop, waiting on sockets).

A round runs when this process commits a write (its events may be due at once), when a lane ends (a slot is
free), when a retry falls due, and every `webhook_poll_seconds` for what other processes wrote. While no
webhook is enabled (checked at each poll), writes do not wake it: a gateway without webhooks pays one query
a poll for them, not one a write.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid

import structlog

from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.storage import Attempt, Delivery, Storage, StorageUnavailable, Webhook
from gateway.webhook_secrets import SecretBox, SecretUnreadable
from gateway.webhook_sender import Answer, Call, Sender

log = structlog.get_logger("gateway.webhooks")

LEASE_MARGIN_MS = 5000  # a claim outlives the call's timeout by this much before another process may retry
# An outcome that could not be recorded is tried again after these pauses (doubling), within its lease.
RECORD_RETRY_SECONDS, LAST_RECORD_RETRY_SECONDS = 0.1, 1.0
MIN_ROUND_SECONDS = 0.002  # wakes closer together than this share one round
GONE = 410


def now_ms() -> int:
    return int(time.time() * 1000)


class DeliveryWorker:
    def __init__(self, storage: Storage, settings: Settings, box: SecretBox, metrics: Metrics) -> None:
        self._storage, self._settings, self._box, self._metrics = storage, settings, box, metrics
        self._delays_ms = [int(delay * 1000) for delay in settings.webhook_retry_delays]
        self._lease_ms = int(settings.webhook_timeout_seconds * 1000) + LEASE_MARGIN_MS
        self._wake = asyncio.Event()
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._lanes: set[asyncio.Task[None]] = set()
        self._waiting: set[str] = set()  # webhooks with deliveries due that the last round found no slot for
        self._stopping = False
        self._sender: Sender | None = None
        self._webhooks_enabled = True  # until the first poll says otherwise
        self._next_poll = 0.0  # time.monotonic() of the next round that also looks at what the others did

    def wake(self) -> None:
        if self._webhooks_enabled:
            self._wake.set()

    async def run(self) -> None:
        """For the life of the app; cancelled at shutdown (see `finish`)."""
        settings = self._settings
        self._sender = Sender(settings.webhook_timeout_seconds, settings.webhook_allow_http,
                              settings.webhook_allow_private, settings.webhook_concurrency)
        while True:
            try:
                pause = await self._round()
            except StorageUnavailable as failure:  # a database that is down now is tried again at the next round
                log.warning("webhook_round_failed", reason=str(failure))
                pause = settings.webhook_poll_seconds
            except Exception:
                log.exception("webhook_round_failed")
                pause = settings.webhook_poll_seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            await asyncio.sleep(MIN_ROUND_SECONDS)
            self._wake.clear()

    async def finish(self) -> None:
        """After `run` is cancelled: the lanes make no new claim, and the calls in flight end and record their
        outcome (each is bounded by the timeout), so that a graceful restart repeats none."""
        self._stopping = True
        if self._lanes:
            await asyncio.wait(self._lanes, timeout=self._settings.webhook_timeout_seconds + 1)
        if self._sender is not None:
            await self._sender.close()

    async def _round(self) -> float:
        """Starts lanes where deliveries are due and there is room; the seconds until the next delivery
        falls due (at most a poll)."""
        started, settings = now_ms(), self._settings
        pause = settings.webhook_poll_seconds
        due = await self._storage.deliveries_due_by_webhook(started, settings.webhook_endpoint_concurrency)
        for due_at, _ in due.values():
            if due_at > started:
                pause = min(pause, (due_at - started) / 1000)
        for webhook_id, lanes in self._shares(due).items():
            if (webhook := await self._storage.get_webhook(webhook_id)) is not None:
                for _ in range(lanes):
                    self._start_lane(webhook)
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + settings.webhook_poll_seconds
            self._webhooks_enabled = await self._storage.any_enabled_webhook()
            oldest = await self._storage.oldest_pending_delivery()
            self._metrics.webhook_oldest_pending.set(0 if oldest is None else max(0.0, time.time() - oldest))
        return max(pause, 0.0)

    def _shares(self, due: dict[str, tuple[int, int]]) -> dict[str, int]:
        """How many lanes to start for each webhook with deliveries due now: the free slots, dealt one at a
        time to the webhook with the fewest lanes (the longest due first among equals). A webhook left with
        none is waiting, and lanes make way for it."""
        settings = self._settings
        wanted = {
            webhook_id: min(settings.webhook_endpoint_concurrency - self._in_flight[webhook_id], due_now)
            for webhook_id, (_, due_now) in sorted(due.items(), key=lambda item: item[1][0]) if due_now > 0
        }
        free = settings.webhook_concurrency - sum(self._in_flight.values())
        shares: collections.Counter[str] = collections.Counter()
        lanes = self._in_flight.copy()
        while free > 0 and (room := [webhook_id for webhook_id in wanted if shares[webhook_id] < wanted[webhook_id]]):
            fewest = min(room, key=lanes.__getitem__)  # the first of them in `wanted`, longest due, among equals
            shares[fewest] += 1
            lanes[fewest] += 1
            free -= 1
        self._waiting = {webhook_id for webhook_id in wanted if lanes[webhook_id] == 0}
        return shares

    def _make_way(self, webhook_id: str) -> bool:
        """Whether a lane of this webhook ends after its call: another webhook with deliveries due has none."""
        return any(self._in_flight[waiting] == 0 for waiting in self._waiting if waiting != webhook_id)

    def _start_lane(self, webhook: Webhook) -> None:
        self._in_flight[webhook.webhook_id] += 1
        lane = asyncio.create_task(self._lane(webhook))
        self._lanes.add(lane)
        lane.add_done_callback(self._lanes.discard)

    async def _lane(self, webhook: Webhook) -> None:
        """Claims, calls and records, one delivery at a time, until none of the webhook's is due."""
        attempt: Attempt | None = None
        lease_ends = 0  # of the claim that `attempt` was made under
        try:
            while True:
                held, claimed, next_lease_ends = await self._record_and_claim(webhook.webhook_id, attempt, lease_ends)
                if attempt is not None:
                    self._counted(attempt, held)
                if not claimed:
                    return
                attempt, lease_ends = await self._attempt(webhook, claimed[0]), next_lease_ends
        except StorageUnavailable:  # the claim's lease runs out, and the delivery is attempted again
            log.warning("webhook_outcome_not_recorded", webhook_id=webhook.webhook_id)
        except Exception:
            log.exception("webhook_lane_failed", webhook_id=webhook.webhook_id)
        finally:
            self._in_flight[webhook.webhook_id] -= 1
            self._wake.set()

    async def _record_and_claim(self, webhook_id: str, attempt: Attempt | None,
                                lease_ends: int) -> tuple[bool, list[Delivery], int]:
        """The last attempt's outcome recorded and the next delivery claimed, with the end of its lease. An
        outcome that cannot be recorded now (a database busy past its timeout) is tried again while the claim
        it was made under lasts: given up, the delivery would be made again once the lease ran out."""
        pause = RECORD_RETRY_SECONDS
        while True:
            now, claim = now_ms(), uuid.uuid4().hex
            try:
                more = 0 if self._stopping or self._make_way(webhook_id) else 1
                held, claimed = await self._storage.record_and_claim(
                    attempt, webhook_id, now, now + self._lease_ms, claim, more)
                return held, claimed, now + self._lease_ms
            except StorageUnavailable:
                if attempt is None or now_ms() + pause * 1000 >= lease_ends:
                    raise
            await asyncio.sleep(pause)
            pause = min(2 * pause, LAST_RECORD_RETRY_SECONDS)

    def _counted(self, attempt: Attempt, held: bool) -> None:
        self._metrics.webhook_attempts.labels(attempt.outcome).inc()
        if not held:
            log.warning("webhook_claim_lost", webhook_id=attempt.delivery.webhook_id,
                        event_id=attempt.delivery.event_id)

    async def _attempt(self, webhook: Webhook, delivery: Delivery) -> Attempt:
        events = await self._storage.event_bodies(webhook.partner_id, [delivery.event_id])
        event = events.get(delivery.event_id)
        if event is None:  # an import moved the order to another partner, or the event is gone
            return Attempt(delivery, now_ms(), "skipped", None, "the partner no longer sees this event", None)
        try:
            answer = await self._send(webhook, delivery, event)
        except Exception as failure:  # a failed attempt like any other: retried, then given up, and shown
            log.exception("webhook_call_failed", webhook_id=webhook.webhook_id, event_id=delivery.event_id)
            answer = Answer(None, f"internal error: {type(failure).__name__}")
        return self._outcome(delivery, answer)

    async def _send(self, webhook: Webhook, delivery: Delivery, event: tuple[bytes, str | None]) -> Answer:
        try:
            secret = self._box.open(webhook.webhook_id, webhook.sealed_secret)
        except SecretUnreadable as unreadable:  # sealed under another GATEWAY_WEBHOOK_SECRET_KEY: the operator's
            log.warning("webhook_secret_unreadable", webhook_id=webhook.webhook_id)
            return Answer(None, str(unreadable))
        assert self._sender is not None
        body, traceparent = event
        return await self._sender.send(Call(webhook.url, secret, delivery.event_id, body, traceparent))

    def _outcome(self, delivery: Delivery, answer: Answer) -> Attempt:
        attempted = now_ms()
        if answer.acknowledged:
            outcome, next_attempt = "delivered", None
        elif answer.status == GONE:
            outcome, next_attempt = "disabled", None
        elif delivery.attempt <= len(self._delays_ms):
            outcome, next_attempt = "failed", attempted + self._delays_ms[delivery.attempt - 1]
        else:
            outcome, next_attempt = "given_up", None
        return Attempt(delivery, attempted, outcome, answer.status, answer.error, next_attempt)
