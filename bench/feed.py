"""Change-feed benchmark: a reader catching up on the feed, and what events cost order creation, in one run.

    .venv/bin/python bench/feed.py [--events 100000] [--seconds 10] [--baseline REV] [--filter-events 100000]
    .venv/bin/python bench/feed.py --filters-only [--postgres URL]
    .venv/bin/python bench/feed.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_feed'

1. Catch-up: a fresh database whose partner has --events order events (an `import` of that many orders,
   each an `order.created`), one gateway process on it (bench/_servers.py: this checkout's code, the rate limit
   far above reach), and one client following the feed from the start at limit=100, one page at a time,
   until an empty page. Printed: events/s, the gateway's CPU per page, and a check that every event came once,
   in order. Target: at least 10,000 events/s, the gateway on one core (one process is one core).
2. Creation cost: the creation phase of bench/create.py (64 connections, unique correlation ids, durable 201s)
   against this checkout's gateway and against the gateway of --baseline (default: the last revision
   without order events, found in git), each on a fresh database of its own, interleaved twice. Printed:
   creations/s of each, and their ratio. Target: with events at least 0.85x of without.
3. Filtered pages (bench/_feed_filters.py): a fresh database whose partner has --filter-events events, of
   which 100 match `type=order.updated` and 100 `customer-id=FEED-RARE`; the first page (limit=100) read
   with each filter and without, one request at a time. Printed: each page's service time (median, p90) and
   the gateway's CPU per page. Target: a filtered page at most 3x an unfiltered one. `--filters-only` runs
   this part alone (no baseline work tree).

With --postgres URL every part runs on PostgreSQL as well, in schemas <search_path>_catchup,
<search_path>_current, <search_path>_baseline and <search_path>_filters (default base bench_feed), each
dropped and created first;
two gateway processes serve each creation phase there, as in bench/create.py. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]  # this checkout's gateway, not the editable install's
import _data  # noqa: E402
import _feed_filters  # noqa: E402
import create  # noqa: E402
from _servers import ROOT, Server, Servers, gateway_headers, gateway_source, server_env, wait_ready  # noqa: E402

RUN_DIR = _data.DATA_DIR / "feed"
PG_DEFAULT_SCHEMA = "bench_feed"
PAGE = 100
CUSTOMERS = 100
TARGET_EVENTS_PER_SECOND = 10_000.0
TARGET_CREATE_RATIO = 0.85
ROUNDS = 2


def cli(root: Path, db_url: str, *args: str) -> str:
    """`order-gateway --database URL ...` of the checkout at `root`."""
    command = [sys.executable, str(root / "run.py"), "--database", db_url, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT,
                          env=server_env(root)).stdout


def seed_events(db_url: str, events: int) -> dict[str, str]:
    """A partner with CUSTOMERS customers and `events` orders, imported with their events."""
    partner: dict[str, str] = json.loads(cli(ROOT, db_url, "partners", "create", "--name", "Feed"))
    path = RUN_DIR / "events.jsonl"
    with open(path, "w") as out:
        out.write(json.dumps({"type": "reseller", "resellerId": "FEED-R", "partnerId": partner["partnerId"],
                              "name": "R"}) + "\n")
        for c in range(CUSTOMERS):
            out.write(json.dumps({"type": "customer", "customerId": f"FEED-C{c}", "resellerId": "FEED-R",
                                  "companyName": "C"}) + "\n")
        for n in range(events):
            out.write(json.dumps({
                "type": "order", "orderId": str(7_000_000_000 + n), "customerId": f"FEED-C{n % CUSTOMERS}",
                "orderType": "NEW", "status": "1000", "currencyCode": "USD",
                "creationDate": f"2026-01-{1 + n % 28:02d}T00:00:00Z", "externalReferenceId": f"F{n}",
                "referenceOrderId": "",
                "lineItems": [{"extLineItemNumber": 1, "offerId": "65304479CA01A12", "quantity": 1,
                               "subscriptionId": f"S{n}", "status": "1000", "currencyCode": "USD"}],
            }) + "\n")
    started = time.perf_counter()
    cli(ROOT, db_url, "import", str(path))
    print(f"imported {events:,} orders (and their events) in {time.perf_counter() - started:.1f} s", flush=True)
    return partner


async def catch_up(server: Server, partner: dict[str, str], events: int) -> tuple[float, float, bool]:
    """(events/s, gateway CPU ms per page, every event once and in order) of one reader from the start."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await wait_ready(session, server, "/readyz")
        await gateway_headers(session, server, partner, prefix="feed")
        seen: list[str] = []
        cursor = ""
        cpu, started = server.cpu_seconds(), time.perf_counter()
        while True:
            query = f"?limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
            async with session.get(f"{server.base}/v3/order-events{query}", headers=server.headers()) as response:
                if response.status != 200:
                    raise RuntimeError(f"{server.name}: the feed answered {response.status}: {await response.text()}")
                page = await response.json()
            if not page["items"]:
                break
            seen.extend(item["orderId"] for item in page["items"])
            cursor = page["cursor"]
        elapsed, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu
    pages = max(1, -(-len(seen) // PAGE))
    in_order = seen == [str(7_000_000_000 + n) for n in range(events)]
    return len(seen) / elapsed, cpu * 1000 / pages, in_order


async def creations(gateways: list[Server], partner: dict[str, str], args: argparse.Namespace) -> create.Phase:
    """bench/create.py's creation phase (after its warm-up) on the started gateways."""
    run_id = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector, timeout=create.REQUEST_TIMEOUT) as session:
        for server in gateways:
            await wait_ready(session, server, "/readyz")
            await gateway_headers(session, server, partner, prefix=f"feed-{run_id}-{server.name}")
        bench = create.Bench(session, gateways, run_id, args.concurrency, [create.CUSTOMER])
        await create.run_phase(bench, "warm-up", list(range(-create.WARMUP_ORDERS, 0)), create.WARMUP_SECONDS, None)
        return await create.run_phase(bench, "create", list(range(args.max_orders)), args.seconds, None)


def baseline_revision() -> str:
    """The newest revision without order events: the parent of the one that added gateway/order_events.py."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "gateway/order_events.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("gateway/order_events.py is not committed yet: name a revision with --baseline")
    return f"{added[-1]}^"


def work_tree(revision: str) -> Path:
    """A detached work tree of `revision` under bench/data/feed (made anew)."""
    path = RUN_DIR / "baseline"
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def databases(backend: str, args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, str]:
    """A fresh database for each part named: catchup, current, baseline, filters."""
    if backend == "SQLite":
        return {name: f"sqlite:///{RUN_DIR}/{name}.db" for name in names}
    base = _data.pg_schema(args.postgres, PG_DEFAULT_SCHEMA)
    return {name: asyncio.run(create._fresh_schema(_data.pg_url(args.postgres, f"{base}_{name}")))
            for name in names}


def run_filters(backend: str, args: argparse.Namespace) -> bool:
    url = databases(backend, args, ("filters",))["filters"]
    return _feed_filters.run_backend(backend, url, args.filter_events, RUN_DIR)


def run_backend(backend: str, args: argparse.Namespace, baseline: Path) -> bool:
    urls = databases(backend, args, ("catchup", "current", "baseline"))
    partner = seed_events(urls["catchup"], args.events)
    servers = Servers()
    try:
        reader = servers.start_gateway(f"feed-{backend.lower()}-reader", "gateway", urls["catchup"])
        rate, cpu_ms, in_order = asyncio.run(catch_up(reader, partner, args.events))
        servers.stop_all()
        rates: dict[str, list[float]] = {"current": [], "baseline": []}
        processes = create.PROCESSES[backend]
        seeded = {name: json.loads(cli(root, urls[name], "partners", "create", "--name", "Bench"))
                  for name, root in (("current", ROOT), ("baseline", baseline))}
        for name, root in (("current", ROOT), ("baseline", baseline)):
            cli(root, urls[name], "import", str(seed_file(seeded[name]["partnerId"], name)))
        for round_no in range(ROUNDS):
            for name, root in (("current", ROOT), ("baseline", baseline)):
                gateways = [servers.start_gateway(f"feed-{backend.lower()}-{name}-{n}", name, urls[name], root=root)
                            for n in range(processes)]
                phase = asyncio.run(creations(gateways, seeded[name], args))
                servers.stop_all()
                if phase.errors:
                    raise RuntimeError(f"{name}: {dict(phase.errors)}; first: {phase.samples}")
                rates[name].append(phase.rate)
                print(f"{backend} round {round_no + 1}: {name} {phase.rate:.0f} creations/s", flush=True)
    finally:
        servers.stop_all()
    return report(backend, args.events, rate, cpu_ms, in_order, rates)


def seed_file(partner_id: str, name: str) -> Path:
    path = RUN_DIR / f"seed-{name}.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in [
        {"type": "reseller", "resellerId": "BENCH-R", "partnerId": partner_id, "name": "R"},
        {"type": "customer", "customerId": create.CUSTOMER, "resellerId": "BENCH-R", "companyName": "C"},
    ]))
    return path


def report(backend: str, events: int, rate: float, cpu_ms: float, in_order: bool,
           rates: dict[str, list[float]]) -> bool:
    current, baseline = (sum(rates[name]) / len(rates[name]) for name in ("current", "baseline"))
    ratio = current / baseline
    checks = [
        (f"catch-up on {events:,} events at limit={PAGE}: events/s", rate, TARGET_EVENTS_PER_SECOND, rate >= TARGET_EVENTS_PER_SECOND),
        ("creations/s with events / without (baseline)", ratio, TARGET_CREATE_RATIO, ratio >= TARGET_CREATE_RATIO),
    ]
    print(f"\n== {backend} ==")
    print(f"catch-up: {rate:,.0f} events/s; gateway CPU {cpu_ms:.2f} ms per page of {PAGE}; "
          f"every event once, in order: {'yes' if in_order else 'NO'}")
    print(f"creations/s: with events {current:.0f} (rounds {', '.join(f'{r:.0f}' for r in rates['current'])}), "
          f"without {baseline:.0f} (rounds {', '.join(f'{r:.0f}' for r in rates['baseline'])})")
    for label, value, target, ok in checks:
        print(f"{backend + ':':<12}{label:<58} {value:>9,.2f}  >= {target:,}  {'PASS' if ok else 'FAIL'}")
    return in_order and all(ok for *_, ok in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events to catch up on (default 100000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound of each creation phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the creation phases")
    parser.add_argument("--max-orders", type=int, default=20_000, help="count bound of each creation phase")
    parser.add_argument("--baseline", help="the revision without events (default: found in git)")
    parser.add_argument("--filter-events", type=int, default=100_000, help="events of part 3 (default 100000)")
    parser.add_argument("--filters-only", action="store_true", help="part 3 alone: filtered pages")
    parser.add_argument("--postgres", metavar="URL", help="also on PostgreSQL (schemas <search_path>_catchup, "
                                                          "_current, _baseline, _filters; default base bench_feed)")
    args = parser.parse_args(argv)
    if min(args.events, args.concurrency, args.max_orders) < 1 or args.seconds <= 0 or args.filter_events < 1000:
        parser.error("need --events, --concurrency, --max-orders >= 1, --filter-events >= 1000 and --seconds > 0")
    _data.check_postgres_argument(parser, args.postgres, PG_DEFAULT_SCHEMA)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    if args.filters_only:
        print(f"Python {sys.version.split()[0]}; gateway code: {gateway_source()}")
        backends = ["SQLite", *(["PostgreSQL"] if args.postgres is not None else [])]
        return 0 if all([run_filters(backend, args) for backend in backends]) else 1
    revision = args.baseline or baseline_revision()
    baseline = work_tree(revision)
    print(f"Python {sys.version.split()[0]}; gateway code: {gateway_source()}; baseline: {revision} in {baseline}")
    started = time.perf_counter()
    try:
        ok = run_backend("SQLite", args, baseline)
        ok = run_filters("SQLite", args) and ok
        if args.postgres is not None:
            ok = run_backend("PostgreSQL", args, baseline) and ok
            ok = run_filters("PostgreSQL", args) and ok
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
