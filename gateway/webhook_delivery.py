"""The delivery worker each gateway process runs: takes due deliveries by claim (gateway.storage.webhooks),
calls the webhooks, records each attempt's outcome, and plans the retries.

Concurrency is bounded twice: at most `webhook_concurrency` calls in flight in the process, and at most
`webhook_endpoint_concurrency` to any one webhook, so a slow or dead endpoint holds its own share and
never the others' (nor the API's: calls are plain tasks on the event loop, waiting on sockets).

The worker wakes when this process commits a write (its events may be due at once), when a call of its
own ends (a slot is free), when a retry falls due, and every `webhook_poll_seconds` for what other
processes wrote.
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
MIN_ROUND_SECONDS = 0.01  # wakes closer together than this share one round
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
        self._calls: set[asyncio.Task[None]] = set()
        self._sender: Sender | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """For the life of the app; cancelled at shutdown (see `finish`)."""
        settings = self._settings
        self._sender = Sender(settings.webhook_timeout_seconds, settings.webhook_allow_http,
                              settings.webhook_allow_private, settings.webhook_concurrency)
        while True:
            try:
                pause = await self._round()
            except Exception:  # a database that is down now is tried again at the next round
                log.exception("webhook_round_failed")
                pause = settings.webhook_poll_seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            await asyncio.sleep(MIN_ROUND_SECONDS)
            self._wake.clear()

    async def finish(self) -> None:
        """After `run` is cancelled: lets the calls in flight end and record their outcome (each is bounded
        by the timeout), so that a graceful restart repeats none."""
        if self._calls:
            await asyncio.wait(self._calls, timeout=self._settings.webhook_timeout_seconds + 1)
        if self._sender is not None:
            await self._sender.close()

    async def _round(self) -> float:
        """Claims what is due and has room; the seconds until the next delivery falls due (at most a poll)."""
        started = now_ms()
        pause = self._settings.webhook_poll_seconds
        due = await self._storage.deliveries_due_by_webhook()
        for webhook_id, due_at in sorted(due.items(), key=lambda item: item[1]):
            if due_at > started:
                pause = min(pause, (due_at - started) / 1000)
                continue
            room = min(self._settings.webhook_endpoint_concurrency - self._in_flight[webhook_id],
                       self._settings.webhook_concurrency - sum(self._in_flight.values()))
            if room > 0:
                await self._start_calls(webhook_id, started, room)
        oldest = await self._storage.oldest_pending_delivery()
        self._metrics.webhook_oldest_pending.set(0 if oldest is None else max(0.0, time.time() - oldest))
        return max(pause, 0.0)

    async def _start_calls(self, webhook_id: str, now: int, room: int) -> None:
        webhook = await self._storage.get_webhook(webhook_id)
        if webhook is None:  # removed since the deliveries were listed: they went with it
            return
        claim = uuid.uuid4().hex
        deliveries = await self._storage.claim_deliveries(webhook_id, now, now + self._lease_ms, claim, room)
        events = await self._storage.event_bodies(webhook.partner_id, [d.event_id for d in deliveries])
        for delivery in deliveries:
            self._in_flight[webhook_id] += 1
            task = asyncio.create_task(self._call(webhook, delivery, events.get(delivery.event_id)))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, webhook: Webhook, delivery: Delivery, event: tuple[bytes, str | None] | None) -> None:
        try:
            if event is None:  # an import moved the order to another partner, or the event is gone
                attempt = Attempt(delivery, now_ms(), "skipped", None, "the partner no longer sees this event", None)
            else:
                attempt = self._outcome(delivery, await self._send(webhook, delivery, event))
            if not await self._storage.record_attempt(attempt):
                log.warning("webhook_claim_lost", webhook_id=webhook.webhook_id, event_id=delivery.event_id)
            self._metrics.webhook_attempts.labels(attempt.outcome).inc()
        except StorageUnavailable:  # the lease runs out and the delivery is attempted again
            log.warning("webhook_outcome_not_recorded", webhook_id=webhook.webhook_id, event_id=delivery.event_id)
        except Exception:
            log.exception("webhook_call_failed", webhook_id=webhook.webhook_id, event_id=delivery.event_id)
        finally:
            self._in_flight[webhook.webhook_id] -= 1
            self._wake.set()

    async def _send(self, webhook: Webhook, delivery: Delivery, event: tuple[bytes, str | None]) -> Answer:
        try:
            secret = self._box.open(webhook.webhook_id, webhook.sealed_secret)
        except SecretUnreadable as unreadable:
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
