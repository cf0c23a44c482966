"""The webhook receiver of bench/webhooks.py (an aiohttp server on 127.0.0.1, in the benchmark's own event
loop), and the figures made of what it records, with the target.

`/fast` answers 204 at once; `/slow` answers 204 after SLOW_SECONDS. Each call is recorded when it reaches
its handler, before it is answered: per path, the first arrival of each orderId (the body's) at
time.perf_counter() (the clock the load client reads, in the same process), every webhook-id (duplicates are
counted), and whether its Standard Webhooks signature verifies with the secret registered for the path. The
slow calls in flight are counted.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

SLOW_SECONDS = 5.0
PATHS = ("fast", "slow")
POLL_SECONDS = 0.05
STOP_SECONDS = 1.0  # stop() cancels the slow calls still waiting after this
SAMPLE_SECONDS = 0.1
TARGET_EXTRA_P99_MS = 100.0  # the fast webhook's p99 beside the slow one, over its p99 alone


@dataclass
class Receiver:
    port: int
    secrets: dict[str, str] = field(default_factory=dict)  # path: the secret of the webhook registered to it
    first: dict[str, dict[str, float]] = field(default_factory=lambda: {p: {} for p in PATHS})  # orderId: arrival
    calls: Counter[str] = field(default_factory=Counter)  # path: calls received
    webhook_ids: dict[str, set[str]] = field(default_factory=lambda: {p: set() for p in PATHS})
    bad_signatures: Counter[str] = field(default_factory=Counter)
    slow_in_flight: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/fast", self._fast)
        app.router.add_post("/slow", self._slow)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=STOP_SECONDS)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _record(self, path: str, request: web.Request) -> None:
        at = time.perf_counter()
        body = await request.read()
        self.first[path].setdefault(_order_id(body), at)
        self.calls[path] += 1
        self.webhook_ids[path].add(request.headers.get("webhook-id", ""))
        try:
            Verifier(self.secrets.get(path, "")).verify(body, dict(request.headers))
        except Exception:  # WebhookVerificationError, or no (valid) secret registered for the path
            self.bad_signatures[path] += 1

    async def _fast(self, request: web.Request) -> web.Response:
        await self._record("fast", request)
        return web.Response(status=204)

    async def _slow(self, request: web.Request) -> web.Response:
        self.slow_in_flight += 1
        try:
            await self._record("slow", request)
            await asyncio.sleep(SLOW_SECONDS)
            return web.Response(status=204)
        finally:
            self.slow_in_flight -= 1

    def duplicates(self, path: str) -> int:
        """Calls to `path` beyond the first of their webhook-id (the event id, the same on every attempt)."""
        return self.calls[path] - len(self.webhook_ids[path])

    async def wait_for(self, path: str, order_ids: set[str], seconds: float) -> bool:
        """True once each of `order_ids` has arrived on `path`; False after `seconds` without. Polled: the
        handler notes the arrival times, so when this notices does not change them."""
        deadline = time.perf_counter() + seconds
        while not order_ids <= self.first[path].keys():
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    async def sample_slow(self, samples: list[int]) -> None:
        """The slow calls in flight every SAMPLE_SECONDS, into `samples`, until cancelled."""
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            samples.append(self.slow_in_flight)


def _order_id(body: bytes) -> str:
    try:
        return str(json.loads(body)["orderId"])
    except (ValueError, KeyError, TypeError):
        return ""


# -- the figures ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Latency:
    """A latency phase: its orders, and per order delivered to /fast its arrival minus the 201's, the POST's."""

    name: str
    placed: int = 0
    errors: int = 0
    seconds: float = 0.0
    after_201_ms: list[float] = field(default_factory=list)
    after_post_ms: list[float] = field(default_factory=list)
    slow_in_flight: list[int] = field(default_factory=list)  # sampled during the phase
    slow_received: int = 0

    @property
    def missing(self) -> int:
        return self.placed - len(self.after_201_ms)

    def add(self, sent: dict[str, tuple[float, float]], arrivals: dict[str, float]) -> None:
        """`sent`: orderId: (POST sent, 201 read); `arrivals`: orderId: first /fast arrival."""
        self.placed = len(sent)
        for order_id, (posted, answered) in sent.items():
            if order_id in arrivals:
                self.after_201_ms.append((arrivals[order_id] - answered) * 1000)
                self.after_post_ms.append((arrivals[order_id] - posted) * 1000)

    def row(self) -> str:
        ms, flight = self.after_201_ms, self.slow_in_flight[int(1 / SAMPLE_SECONDS):] or [0]  # from 1 s in
        return (f"{self.name:<12} {self.placed:>6} {self.placed / max(self.seconds, 1e-9):>5.0f} {self.errors:>6} "
                f"{self.missing:>7} {percentile(ms, 50):>7.1f} {percentile(ms, 99):>7.1f} "
                f"{max(ms, default=math.nan):>7.1f} {sum(v <= 0 for v in ms):>4} "
                f"{percentile(self.after_post_ms, 50):>8.1f}/{percentile(self.after_post_ms, 99):<9.1f} "
                f"{min(flight):>9}-{max(flight):<9} {self.slow_received:>9}")


LATENCY_HEADER = (f"{'phase':<12} {'orders':>6} {'/s':>5} {'errors':>6} {'missing':>7} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'max ms':>7} {'<=0':>4} {'p50/p99 from POST':>18} {'slow in flight':>19} {'slow rcvd':>9}")


@dataclass
class Throughput:
    """The import phase: its deliveries to /fast, timed from the import's end (the CLI process's exit)."""

    orders: int
    import_seconds: float = 0.0
    delivered: int = 0
    seconds: float = 0.0  # from the import's end to the last arrival
    first_wait: float = 0.0  # from the import's end to the first arrival
    spread: float = 0.0  # from the first arrival to the last
    gateway_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"deliveries/s: {self.orders:,} orders imported in {self.import_seconds:.1f} s (CLI, one "
                f"transaction); {self.delivered:,} delivered, the last {self.seconds:.2f} s after the import's end: "
                f"{self.rate:,.0f}/s (first after {self.first_wait:+.2f} s; first to last "
                f"{self.delivered / max(self.spread, 1e-9):,.0f}/s); gateway CPU "
                f"{self.gateway_cpu * 1000 / max(self.delivered, 1):.2f} ms per delivery; this process (receiver) "
                f"{self.client_cpu / max(self.seconds, 1e-9):.2f} cores")


@dataclass
class Result:
    """One backend's run: its phases, the receiver's checks, and the verdict against the target."""

    backend: str
    processes: int
    alone: Latency
    beside: Latency
    throughput: Throughput
    duplicates: int
    bad_signatures: int

    @property
    def extra_p99(self) -> float:
        return percentile(self.beside.after_201_ms, 99) - percentile(self.alone.after_201_ms, 99)

    @property
    def ok(self) -> bool:
        counts = all(not (p.errors or p.missing) for p in (self.alone, self.beside))
        complete = self.throughput.delivered == self.throughput.orders
        clean = counts and complete and not self.duplicates and not self.bad_signatures
        return clean and self.extra_p99 <= TARGET_EXTRA_P99_MS


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary(results: list[Result]) -> None:
    print(f"\n{'backend':<11} {'proc':>4} {'p50 alone':>9} {'p99 alone':>9} {'p50 beside':>10} {'p99 beside':>10} "
          f"{'p99 diff':>8} {'deliveries/s':>12}  verdict")
    for r in results:
        alone, beside = r.alone.after_201_ms, r.beside.after_201_ms
        print(f"{r.backend:<11} {r.processes:>4} {percentile(alone, 50):>9.1f} {percentile(alone, 99):>9.1f} "
              f"{percentile(beside, 50):>10.1f} {percentile(beside, 99):>10.1f} {r.extra_p99:>+8.1f} "
              f"{r.throughput.rate:>12,.0f}  {verdict(r.ok)}")
    print(f"(ms from the 201 read to the /fast arrival; target: p99 diff <= {TARGET_EXTRA_P99_MS:g} ms, every order "
          "delivered once, signatures valid, no errors)")
