"""bench/feed.py part 3, filtered pages: what one page of the feed costs with a filter that rarely matches,
beside one without.

A fresh database whose partner has `events` order events, imported: all but RARE of them `order.created`,
RARE of those (spread evenly) of the customer FEED-RARE and the others round-robin over CUSTOMERS customers;
then a second import changes RARE other orders (spread evenly) and adds RARE `order.updated` events, the
newest. So `type=order.updated` and `customer-id=FEED-RARE` each match RARE events of `events`, and so do
`customer-id=FEED-RARE&customer-id=FEED-NONE` (FEED-NONE has none) and `customer-id=FEED-RARE&type=
order.created`. One gateway process serves it (loopback); for each query, one client reads the first page
(no cursor, limit=PAGE) a few times to warm up, then SAMPLES times or for SECONDS at most, one request at a
time. Printed: the median and 90th percentile of the request's time as the client saw it (the service time:
loopback, no other load), the gateway's CPU per page, and each filtered page's median over the unfiltered
one's. Every answer is checked: a full page whose items all match the filter.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _servers import ROOT, Server, Servers, gateway_headers, server_env, wait_ready

PAGE = 100
RARE = 100
CUSTOMERS = 100
RARE_CUSTOMER = "FEED-RARE"
WARMUP = 3
SAMPLES = 50
SECONDS = 10.0
TARGET_RATIO = 3.0  # a filtered page costs at most this many unfiltered ones
# (label, query after limit, what every item must hold)
QUERIES: tuple[tuple[str, str, Callable[[dict[str, Any]], bool]], ...] = (
    ("unfiltered", "", lambda item: True),
    ("type=order.updated", "&type=order.updated", lambda item: item["type"] == "order.updated"),
    (f"customer-id={RARE_CUSTOMER}", f"&customer-id={RARE_CUSTOMER}", lambda item: item["customerId"] == RARE_CUSTOMER),
    # Two values (ORed), one of a customer without events.
    (f"customer-id={RARE_CUSTOMER}&customer-id=FEED-NONE", f"&customer-id={RARE_CUSTOMER}&customer-id=FEED-NONE",
     lambda item: item["customerId"] == RARE_CUSTOMER),
    (f"customer-id={RARE_CUSTOMER}&type=order.created", f"&customer-id={RARE_CUSTOMER}&type=order.created",
     lambda item: (item["customerId"], item["type"]) == (RARE_CUSTOMER, "order.created")),
)


@dataclass
class Timing:
    label: str
    pages: int
    median_ms: float
    p90_ms: float
    cpu_ms: float


def cli(db_url: str, *args: str) -> str:
    command = [sys.executable, str(ROOT / "run.py"), "--database", db_url, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=server_env()).stdout


def _order(n: int, customer: str, reference: str) -> dict[str, Any]:
    return {
        "type": "order", "orderId": str(8_000_000_000 + n), "customerId": customer, "orderType": "NEW",
        "status": "1000", "currencyCode": "USD", "creationDate": f"2026-02-{1 + n % 28:02d}T00:00:00Z",
        "externalReferenceId": reference, "referenceOrderId": "",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "65304479CA01A12", "quantity": 1,
                       "subscriptionId": f"S{n}", "status": "1000", "currencyCode": "USD"}],
    }


def seed(db_url: str, events: int, run_dir: Path) -> dict[str, str]:
    """The partner of the module docstring, with `events` events: RARE of the customer, RARE updates last."""
    partner: dict[str, str] = json.loads(cli(db_url, "partners", "create", "--name", "Filters"))
    orders, step = events - RARE, (events - RARE) // RARE
    customers = [f"FEED-C{c}" for c in range(CUSTOMERS)]
    owner = [RARE_CUSTOMER if n % step == step - 1 and n < RARE * step else customers[n % CUSTOMERS]
             for n in range(orders)]
    updated = [n for n in range(step // 2, orders, step) if owner[n] != RARE_CUSTOMER][:RARE]
    created, changed = run_dir / "filters.jsonl", run_dir / "filters-updates.jsonl"
    with open(created, "w") as out:
        out.write(json.dumps({"type": "reseller", "resellerId": "FEED-R", "partnerId": partner["partnerId"],
                              "name": "R"}) + "\n")
        for customer in [*customers, RARE_CUSTOMER]:
            out.write(json.dumps({"type": "customer", "customerId": customer, "resellerId": "FEED-R",
                                  "companyName": "C"}) + "\n")
        out.writelines(json.dumps(_order(n, owner[n], f"F{n}")) + "\n" for n in range(orders))
    changed.write_text("".join(json.dumps(_order(n, owner[n], f"U{n}")) + "\n" for n in updated))
    started = time.perf_counter()
    cli(db_url, "import", str(created))
    cli(db_url, "import", str(changed))
    print(f"imported {orders:,} orders and changed {len(updated)} (events: {orders + len(updated):,}) "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    return partner


async def _time_query(session: aiohttp.ClientSession, server: Server, query: str,
                      matches: Callable[[dict[str, Any]], bool]) -> tuple[list[float], float]:
    """(each request's seconds, gateway CPU seconds in all) of the first page of `query`, after a warm-up."""
    url = f"{server.base}/v3/order-events?limit={PAGE}{query}"
    times: list[float] = []
    cpu, deadline = 0.0, time.monotonic() + SECONDS
    for n in range(WARMUP + SAMPLES):
        if n == WARMUP:
            cpu = server.cpu_seconds()
        started = time.perf_counter()
        async with session.get(url, headers=server.headers()) as response:
            body = await response.read()
        elapsed = time.perf_counter() - started
        page = json.loads(body)
        if response.status != 200 or page["count"] != PAGE or not all(matches(item) for item in page["items"]):
            raise RuntimeError(f"{server.name}: {query or 'unfiltered'} answered {response.status}: {body[:300]!r}")
        if n >= WARMUP:
            times.append(elapsed)
            if time.monotonic() > deadline:
                break
    return times, server.cpu_seconds() - cpu


async def measure(server: Server, partner: dict[str, str]) -> list[Timing]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await wait_ready(session, server, "/readyz")
        await gateway_headers(session, server, partner, prefix="filters")
        timings = []
        for label, query, matches in QUERIES:
            times, cpu = await _time_query(session, server, query, matches)
            ms = sorted(t * 1000 for t in times)
            timings.append(Timing(label, len(ms), statistics.median(ms), ms[int(0.9 * (len(ms) - 1))],
                                  cpu * 1000 / len(ms)))
    return timings


def report(backend: str, events: int, timings: list[Timing]) -> bool:
    base = timings[0].median_ms
    print(f"\n== {backend}: filtered pages ({events:,} events, {RARE} of them match each filter; "
          f"the first page, limit={PAGE}) ==")
    ok = True
    for timing in timings:
        ratio = timing.median_ms / base
        verdict = "" if timing is timings[0] else f"  {ratio:5.1f}x  <= {TARGET_RATIO}x  " + (
            "PASS" if ratio <= TARGET_RATIO else "FAIL")
        ok = ok and (timing is timings[0] or ratio <= TARGET_RATIO)
        print(f"{backend + ':':<12}{timing.label:<44} median {timing.median_ms:7.2f} ms  p90 {timing.p90_ms:7.2f} ms"
              f"  gateway CPU {timing.cpu_ms:6.2f} ms/page ({timing.pages} pages){verdict}")
    return ok


def run_backend(backend: str, db_url: str, events: int, run_dir: Path) -> bool:
    partner = seed(db_url, events, run_dir)
    servers = Servers()
    try:
        server = servers.start_gateway(f"feed-{backend.lower()}-filters", "gateway", db_url)
        timings = asyncio.run(measure(server, partner))
    finally:
        servers.stop_all()
    return report(backend, events, timings)
