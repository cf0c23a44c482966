"""Prometheus metrics, one registry per application (so tests and several apps never share counters).

Under `serve --workers N` each worker counts in files of a directory the parent made
(PROMETHEUS_MULTIPROC_DIR, prometheus-client's multiprocess mode, chosen when the library is imported), and a
scrape, whichever worker it reaches, reads all of them: the counts of the whole gateway, not of one worker.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Refused authentication, by error code: the API's (403 4115; 401 4116, 4117) and the token endpoints' failed
# client authentication (401 invalid_client). Their lock-out's 429, invalid_client too, checked no credential:
# it is a rate limit, counted as one (limit="token").
AUTH_CODES = frozenset({"4115", "4116", "4117"})
CLIENT_REJECTED = "invalid_client"
AUTH_REJECTIONS = (*sorted(AUTH_CODES), CLIENT_REJECTED)
UNAUTHORIZED = 401
# Every label value a counter can take is known, and each is shown from the start (at 0), as Prometheus
# advises: a rate over a series that appears only with its first event misses that event.
RATE_LIMITS = ("partner", "token")
IDEMPOTENCY_OUTCOMES = ("stored", "replayed", "conflict", "mismatch")
WEBHOOK_RESULTS = ("delivered", "failed", "given_up", "disabled", "skipped")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The standard collectors: the process's CPU, memory, file descriptors and start time; Python's
        # version; its garbage collector. (Under --workers: of the worker that answers the scrape.)
        self._standard = (ProcessCollector(registry=self.registry), PlatformCollector(registry=self.registry),
                          GCCollector(registry=self.registry))
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled now (received, not yet answered)",
            registry=self.registry, multiprocess_mode="livesum",
        )
        self.requests = Counter(
            "gateway_requests", "Requests answered, by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds", "Time to answer a request, by route template",
            ["route"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.replays = Counter(
            "gateway_idempotent_replays", "Stored answers replayed for a repeated X-Correlation-Id",
            registry=self.registry,
        )
        self._count_outcomes()

    def _count_outcomes(self) -> None:
        """The counters of what became of requests and deliveries, each label value shown from the start."""
        # How the replay layer answered a POST or PATCH: stored (executed, its answer kept), replayed,
        # conflict (409 4122: the same key still executing), mismatch (422 4123: the key with another request).
        self.idempotency = Counter(
            "gateway_idempotency_outcomes", "POST and PATCH requests by what their X-Correlation-Id did",
            ["outcome"], registry=self.registry,
        )
        # Labelled by what was limited ("partner": a /v3 request over its partner's rate; "token": a client id
        # refused after failed authentications), never by partner: the label set stays fixed.
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests answered 429 by a rate limit, by limit",
            ["limit"], registry=self.registry,
        )
        # One per attempt, by outcome: delivered, failed (to be retried), given_up (the schedule ran out),
        # disabled (a 410), skipped (the partner no longer sees the event).
        self.webhook_attempts = Counter(
            "gateway_webhook_attempts", "Webhook delivery attempts made by this process, by result",
            ["result"], registry=self.registry,
        )
        self.webhook_oldest_pending = Gauge(
            "gateway_webhook_oldest_pending_seconds",
            "Age of the oldest webhook delivery not yet made (0 when none), across every process",
            registry=self.registry, multiprocess_mode="livemax",
        )
        self.auth_rejections = Counter(
            "gateway_auth_rejections", "Requests refused by authentication, by error code",
            ["code"], registry=self.registry,
        )
        for counter, values in ((self.rate_limited, RATE_LIMITS), (self.idempotency, IDEMPOTENCY_OUTCOMES),
                                (self.webhook_attempts, WEBHOOK_RESULTS), (self.auth_rejections, AUTH_REJECTIONS)):
            for value in values:
                counter.labels(value)

    def exposition(self) -> CollectorRegistry:
        """What a scrape shows: this registry, or under --workers every worker's counts and this one's
        standard collectors."""
        if not os.environ.get(MULTIPROCESS_DIR):
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
        for collector in self._standard:
            merged.register(collector)
        return merged

    def observe(self, route: str, method: str, status: int, seconds: float, error_code: str | None,
                idempotency: str | None) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if idempotency is not None:
            self.idempotency.labels(idempotency).inc()
        if idempotency == "replayed":
            self.replays.inc()
        if error_code in AUTH_CODES or (error_code == CLIENT_REJECTED and status == UNAUTHORIZED):
            self.auth_rejections.labels(error_code).inc()
