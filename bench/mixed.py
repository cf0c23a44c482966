"""Mixed-load benchmark: history reads and order creations, nine to one, against the same customers.

    .venv/bin/python bench/mixed.py                      # SQLite: 50 customers of 2,000 orders, 20 s phases
    .venv/bin/python bench/mixed.py --seconds 5 --customers 20
    .venv/bin/python bench/mixed.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_mixed'
                                                         # the same, then on PostgreSQL with two gateways

For each backend: a fresh database of --customers customers (no cotermDate) with --orders-per-customer
orders each (bench/_layouts.py; the SQLite file is built once under bench/data/ and copied for every run,
the PostgreSQL schema, the URL's search_path (default bench_mixed), is dropped and loaded again), the gateway
(`order-gateway serve`; on PostgreSQL two processes on the one schema, the connections spread over both),
then, over 64 keep-alive connections (aiohttp client, one bounded connector):

1. warm-up: a page of every customer on every gateway (their totalCounts), then reads for a few seconds;
2. phase A, read-only: history pages of those customers (page 1 mostly, some random pages and filters);
3. phase B, mixed: the same reads, and every tenth request a NEW order (a unique X-Correlation-Id each)
   for one of the same customers; afterwards the customers' totalCounts must have grown by the 201s.

Each phase is bounded by --seconds and --max-requests. Printed per phase: req/s, p50/p99 per kind, every
non-2xx answer or failed request by kind and status, the gateways' RSS (VmRSS summed, and their peak VmHWM),
the cores used by the gateways, this client and everything else; then mixed/read-only req/s (target >= 0.5x)
and the mixed phase's read p99 (target < 50 ms). Any error fails the run. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # this checkout's gateway, not the editable install's (_servers.py)
import _data  # noqa: E402
import _layouts  # noqa: E402
import _mixed_report  # noqa: E402
from _mixed_load import CREATE_EVERY, LIMIT, Load, Phase, run_phase  # noqa: E402
from _servers import Server, Servers, gateway_headers, gateway_source, wait_ready  # noqa: E402
from create import _body as order_body  # noqa: E402  (bench/create.py's creation body)
from create import total_count  # noqa: E402

CONNECTIONS = 64
PG_GATEWAYS = 2
PG_DEFAULT_SCHEMA = "bench_mixed"
RUN_DIR = _data.DATA_DIR / "mixed"
WARMUP_SECONDS = 3.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


def sqlite_copy(customers: int, per_customer: int) -> tuple[dict[str, Any], str]:
    """A fresh copy of the cached pristine database: creations must not pile up from run to run."""
    info = _data.ensure(customers * per_customer, kind=f"mixed{customers}c",
                        layout=lambda _, anchor: _layouts.mixed_layout(customers, per_customer, anchor))
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    run = RUN_DIR / "run.db"
    for leftover in (run, Path(f"{run}-wal"), Path(f"{run}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(_data.paths(customers * per_customer, f"mixed{customers}c")[0], run)
    return info, f"sqlite:///{run}"


def postgres_fresh(url: str, customers: int, per_customer: int) -> dict[str, Any]:
    schema = _data.pg_schema(url, PG_DEFAULT_SCHEMA)
    if schema in ("public", "pg_catalog", "information_schema"):
        raise SystemExit(f"--postgres: search_path={schema} would be dropped: name a schema of the benchmark's own")
    anchor = _data.anchor_from_siblings() or (int(time.time()) // 86400) * 86400
    layout = _layouts.mixed_layout(customers, per_customer, anchor)
    wanted = {"generator": _data.GENERATOR, "pgSchema": _data.PG_SCHEMA, "orders": customers * per_customer,
              "anchor": anchor}
    return asyncio.run(_data.build_postgres(url, schema, customers * per_customer, layout, wanted))


async def run_backend(backend: str, gateways: list[Server], info: dict[str, Any],
                      args: argparse.Namespace) -> tuple[Phase, Phase, str]:
    """Warm-up, phase A, phase B and the totalCount check on the started gateways."""
    customers = list(info["customerIds"])
    run_id = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        for server in gateways:
            await wait_ready(session, server, "/readyz")
            # One prefix per process and run: two processes share the database's stored correlation ids.
            await gateway_headers(session, server, info, prefix=f"mixed-{run_id}-{server.name}")
        load = Load(session, gateways, {c: info["ordersPerCustomer"] for c in customers}, CONNECTIONS, order_body)
        before = [await total_count(session, server, customers) for server in gateways]
        await run_phase(load, "warm-up", WARMUP_SECONDS, args.max_requests, mixed=False)
        print(f"{backend}: warm-up done; phases of at most {args.seconds:g} s or {args.max_requests:,} requests, "
              f"{CONNECTIONS} connections over {len(gateways)} gateway process(es)", flush=True)
        read_only = await run_phase(load, "read-only", args.seconds, args.max_requests, mixed=False)
        print(f"{backend}: read-only {read_only.rate:.0f} req/s", flush=True)
        mixed = await run_phase(load, "mixed", args.seconds, args.max_requests, mixed=True)
        print(f"{backend}: mixed {mixed.rate:.0f} req/s", flush=True)
        after = [await total_count(session, server, customers) for server in gateways]
    grown = [a - b for a, b in zip(after, before)]
    check = (f"created {mixed.created:,} (201s); the customers' totalCounts grew by "
             + ", ".join(f"{g:,}" for g in grown) + " (per gateway process)")
    if any(g != mixed.created for g in grown):
        check = "MISMATCH: " + check
    return read_only, mixed, check


def bench_one(backend: str, database_url: str, info: dict[str, Any], processes: int,
              args: argparse.Namespace) -> bool:
    servers = Servers()
    try:
        prefix = "mixed-pg" if backend == "PostgreSQL" else "mixed-sqlite"
        gateways = [servers.start_gateway(f"{prefix}-{n + 1}", f"gateway {n + 1}", database_url)
                    for n in range(processes)]
        print(f"{backend}: gateways " + ", ".join(f"{g.name} pid {g.process.pid} port {g.port}" for g in gateways))
        read_only, mixed, check = asyncio.run(run_backend(backend, gateways, info, args))
    finally:
        servers.stop_all()
    return _mixed_report.report(backend, processes, CONNECTIONS, read_only, mixed, check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound of each phase (default 20)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="request bound of each phase")
    parser.add_argument("--customers", type=int, default=50, help="customers read and written (default 50)")
    parser.add_argument("--orders-per-customer", type=int, default=2000, help="their orders at the start")
    parser.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL run (needs --postgres)")
    parser.add_argument("--postgres", metavar="URL",
                        help="then the same on PostgreSQL, two gateway processes on one fresh schema: the URL's "
                             f"search_path (default {PG_DEFAULT_SCHEMA}), dropped and loaded again")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.max_requests < CREATE_EVERY or args.customers < 1:
        parser.error(f"need --seconds > 0, --max-requests >= {CREATE_EVERY}, --customers >= 1")
    if args.orders_per_customer < 2 * LIMIT:
        parser.error(f"need --orders-per-customer >= {2 * LIMIT}")
    _data.check_postgres_argument(parser, args.postgres, PG_DEFAULT_SCHEMA)
    if args.postgres is None and args.no_sqlite:
        parser.error("--no-sqlite needs --postgres")
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}; gateway code: {gateway_source()}; "
          f"{args.customers} customers x {args.orders_per_customer:,} orders; reads : creations = "
          f"{CREATE_EVERY - 1} : 1")
    # SIGTERM/SIGHUP end the run the way Ctrl-C does, so the servers are stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    started = time.perf_counter()
    ok = True
    if not args.no_sqlite:
        info, url = sqlite_copy(args.customers, args.orders_per_customer)
        ok = bench_one("SQLite", url, info, 1, args) and ok
    if args.postgres is not None:
        info = postgres_fresh(args.postgres, args.customers, args.orders_per_customer)
        ok = bench_one("PostgreSQL", info["url"], info, PG_GATEWAYS, args) and ok
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
