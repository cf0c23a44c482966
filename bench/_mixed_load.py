"""The load of bench/mixed.py: a fixed number of connections sending history reads and, in the mixed phase,
order creations (every CREATE_EVERY-th request), each phase bounded in seconds and in requests.

Nothing is silently dropped: every answer that is not 2xx, and every request that failed (timeout, connection
reset), is counted by kind and status (or exception name), with the first answer's body kept for the report.
Latencies are those of the 2xx answers.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp

from _servers import Server, client_cpu, memory_kib, system_busy

LIMIT = 25
MAX_LIMIT = 100
CREATE_EVERY = 10  # nine reads, then one creation
READ, CREATE = "read", "create"
KINDS = (READ, CREATE)
SAMPLE_BYTES = 200

# Which history pages the reads ask for, by weight: mostly page 1, as clients do, and some deeper pages
# and filtered queries (a filter is served from the same per-customer index, then tested row by row).
ReadQuery = Callable[[random.Random, int], dict[str, str | int]]
READ_QUERIES: tuple[tuple[int, str, ReadQuery], ...] = (
    (50, "page 1", lambda rng, orders: {"offset": 0, "limit": LIMIT}),
    (20, "a random page", lambda rng, orders: {"offset": rng.randrange(max(1, orders - LIMIT)), "limit": LIMIT}),
    (15, "NEW orders, page 1", lambda rng, orders: {"order-type": "NEW", "offset": 0, "limit": LIMIT}),
    (15, "completed orders, 100 a page", lambda rng, orders: {"status": "1000", "offset": 0, "limit": MAX_LIMIT}),
)


def read_path(rng: random.Random, customer_id: str, orders: int) -> str:
    """A history page of the customer, who had `orders` orders before the run (offsets stay valid: it only grows)."""
    (_, _, query), = rng.choices(READ_QUERIES, weights=[weight for weight, _, _ in READ_QUERIES])
    return f"/v3/customers/{customer_id}/orders?{urlencode(query(rng, orders))}"


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status or exception): count
    samples: dict[tuple[str, str], str] = field(default_factory=dict)  # the first body of each error
    created: int = 0
    rss_kib: int = 0  # VmRSS summed over the gateway processes, at the end of the phase
    peak_kib: int = 0  # VmHWM summed: each process's peak since it started
    gateway_cores: float = 0.0  # CPU used by the gateway processes, in cores
    client_cores: float = 0.0  # by this load client
    other_cores: float = 0.0  # by everything else (the database server on PostgreSQL, other users' jobs)

    @property
    def requests(self) -> int:
        return sum(map(len, self.latencies.values())) + sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, kind: str, share: float) -> float | None:
        ordered = sorted(self.latencies[kind])
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000 if ordered else None

    def error(self, kind: str, what: str, sample: str) -> None:
        self.errors[(kind, what)] += 1
        self.samples.setdefault((kind, what), sample[:SAMPLE_BYTES])


@dataclass
class Load:
    """What every phase shares: the session, the gateways, the customers and their order counts."""

    session: aiohttp.ClientSession
    gateways: list[Server]
    customers: dict[str, int]  # customer id: orders before the run
    connections: int
    body: Callable[[int], dict[str, object]]  # the creation body of request n
    rng: random.Random = field(default_factory=lambda: random.Random(7))


async def run_phase(load: Load, name: str, seconds: float, max_requests: int, mixed: bool) -> Phase:
    """Every connection sends request after request (connection i to gateway i mod the count) until the
    phase has issued max_requests or run `seconds`; the requests in flight then finish."""
    phase = Phase(name)
    customers = list(load.customers)
    issued = 0
    pids = [server.process.pid for server in load.gateways]
    cpu0, client0, busy0 = _cpu(load.gateways), client_cpu(), system_busy()
    started = time.perf_counter()
    deadline = started + seconds

    async def send(server: Server, kind: str, n: int) -> None:
        customer_id = load.rng.choice(customers)
        sent = time.perf_counter()
        try:
            if kind == CREATE:
                request = load.session.post(f"{server.base}/v3/customers/{customer_id}/orders", json=load.body(n),
                                            headers=server.headers())
            else:
                path = read_path(load.rng, customer_id, load.customers[customer_id])
                request = load.session.get(server.base + path, headers=server.headers())
            async with request as response:
                body = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            phase.error(kind, type(exc).__name__, str(exc))
            return
        if 200 <= response.status < 300:
            phase.latencies[kind].append(time.perf_counter() - sent)
            phase.created += kind == CREATE
        else:
            phase.error(kind, str(response.status), body.decode("utf-8", "replace"))

    async def connection(index: int) -> None:
        nonlocal issued
        server = load.gateways[index % len(load.gateways)]
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            kind = CREATE if mixed and issued % CREATE_EVERY == 0 else READ
            await send(server, kind, issued)

    await asyncio.gather(*(connection(i) for i in range(load.connections)))
    phase.seconds = time.perf_counter() - started
    for server in load.gateways:
        server.check_alive()
    gateway_used, client_used = _cpu(load.gateways) - cpu0, client_cpu() - client0
    phase.gateway_cores, phase.client_cores = gateway_used / phase.seconds, client_used / phase.seconds
    phase.other_cores = max(0.0, system_busy() - busy0 - gateway_used - client_used) / phase.seconds
    memory = [memory_kib(pid) for pid in pids]
    phase.rss_kib, phase.peak_kib = sum(rss for rss, _ in memory), sum(peak for _, peak in memory)
    return phase


def _cpu(servers: list[Server]) -> float:
    return sum(server.cpu_seconds() for server in servers)
