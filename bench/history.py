"""Order-history benchmark: the gateway against two straightforward references, in one interleaved run.

    .venv/bin/python bench/history.py            # 1,000,000-order database (built once, then cached)
    .venv/bin/python bench/history.py --quick    # 100,000 orders, shorter rounds: a sanity run
    .venv/bin/python bench/history.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_history'
                                                 # the same, and the same again on PostgreSQL, in one run

What it does:

1. Builds (or reuses, from bench/data/) a database of 1,000,000 orders over some 4,000 customers, one of
   which (the "hot" customer, no cotermDate) has 10,000 orders within the last 300 days, and a second
   database holding only that customer's 10,000 orders (bench/_data.py).
2. Starts, each as its own process on 127.0.0.1: the gateway on the big database (`order-gateway serve`,
   every middleware on, its JSON request log written to bench/data/logs/), the gateway on the small
   database, and the two references of bench/_refs.py on the big database (bare aiohttp; FastAPI on
   uvicorn, one worker), which serve the same page with no auth, validation or logging.
3. Checks that every server returns the same totalCount and the same orders for each scenario.
4. Warms every server up, then runs rounds with a fixed number of concurrent keep-alive connections
   (aiohttp client), each round bounded in requests and in seconds, interleaved server by server and
   repeated (the server order rotates every repetition): page 1 (offset 0, limit 25) on all four servers,
   the deep page (offset 9900, limit 25) on the three big-database servers.
5. Prints req/s (median over rounds), p50/p99 latency (over all requests of all rounds) and the server
   process's CPU time per request, then the ratios against the targets. Every server is stopped at the end,
   on error too.

With --postgres URL, the same data is also built (once, then cached) in two PostgreSQL schemas,
<base>_<orders> and <base>_10000 (base: the URL's search_path, default bench_history; see
bench/_data.py), and four more servers run on them: the gateway (`order-gateway --database URL serve`) on
each, and the two references reading PostgreSQL through an asyncpg pool. Their rounds are interleaved with
the SQLite ones (one rotation over all eight servers), the page checks compare all eight, and the table and
the ratios are printed for each backend. Each server's PostgreSQL connections carry its own
application_name, so the CPU time of the database backends serving it is measured too ("DB ms/req", from
pg_stat_activity and /proc: the server must be local) and is not counted as noise.

"Service time" in the ratios is 1/throughput at the fixed concurrency (the closed loop keeps the server
busy, so that is its time per request); p50 latency ratios are shown beside them for information.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import _data  # noqa: E402
from _servers import (  # noqa: E402
    LOG_DIR, Server, Servers, client_cpu, free_port, gateway_headers, process_cpu, system_busy, wait_ready,
)

LIMIT = 25
DEEP_OFFSET = 9900
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)

TARGET_VS_AIOHTTP = 1.0
TARGET_VS_FASTAPI = 1.3
TARGET_DEEP_VS_PAGE1 = 2.0
TARGET_BIG_VS_SMALL = 1.2


@dataclass(frozen=True)
class Profile:
    orders: int
    reps: int
    seconds: float
    max_requests: int
    warmup_seconds: float
    concurrency: int


FULL = Profile(orders=1_000_000, reps=5, seconds=3.0, max_requests=20_000, warmup_seconds=2.0, concurrency=8)
QUICK = Profile(orders=100_000, reps=2, seconds=1.0, max_requests=5_000, warmup_seconds=0.5, concurrency=8)


# -- servers -----------------------------------------------------------------------------------------------


class DbCpu:
    """CPU time of the PostgreSQL backend processes serving one server, found by their application_name."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> DbCpu:
        import asyncpg

        connection = await asyncpg.connect(_data.pg_url(url, application_name="bench-monitor"))
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = ""
        if comm != "postgres":
            await connection.close()
            raise RuntimeError("--postgres: the server must run on this machine (its backends' CPU is measured)")
        return cls(connection)

    async def snapshot(self, application_name: str) -> dict[int, float]:
        """CPU seconds per backend pid."""
        rows = await self._connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        out: dict[int, float] = {}
        for (pid,) in rows:
            with contextlib.suppress(OSError, IndexError, ValueError):
                out[pid] = process_cpu(pid)
        return out

    async def close(self) -> None:
        await self._connection.close()


# -- load --------------------------------------------------------------------------------------------------


@dataclass
class Round:
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float  # share of one core used by this (load client) process
    others: float  # cores used by every other process meanwhile: noise from outside the benchmark
    db_cpu: float | None  # CPU seconds of the PostgreSQL backends serving the server; None: SQLite (in-process)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def run_round(
    session: aiohttp.ClientSession, server: Server, url: str, seconds: float, max_requests: int, concurrency: int,
    db_cpu: DbCpu | None = None,
) -> Round:
    server.check_alive()
    latencies: list[float] = []
    failures: list[str] = []
    issued = 0
    db0 = await db_cpu.snapshot(server.db_app) if db_cpu and server.db_app else None
    cpu0, client0, busy0 = server.cpu_seconds(), client_cpu(), system_busy()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline and not failures:
            issued += 1
            sent = time.perf_counter()
            async with session.get(url, headers=server.headers()) as response:
                body = await response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {body[:300]!r}")
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    server_cpu, client_used, busy = server.cpu_seconds() - cpu0, client_cpu() - client0, system_busy() - busy0
    db_used: float | None = None
    if db_cpu is not None and server.db_app and db0 is not None:
        # Backends opened during the round count from zero; one closed during the round is missed.
        db_used = sum(max(0.0, t - db0.get(pid, 0.0)) for pid, t in (await db_cpu.snapshot(server.db_app)).items())
    if failures:
        raise RuntimeError(f"{server.name}: {len(failures)} non-200 answer(s), first: {failures[0]}")
    others = max(0.0, busy - server_cpu - client_used - (db_used or 0.0)) / elapsed
    return Round(len(latencies), elapsed, latencies, server_cpu, client_used / elapsed, others, db_used)


# -- checks ------------------------------------------------------------------------------------------------


async def fetch_page(session: aiohttp.ClientSession, server: Server, url: str) -> dict[str, Any]:
    async with session.get(url, headers=server.headers()) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{server.name}: {url} answered {response.status}: {body[:300]!r}")
    return orjson.loads(body)


async def check_same_page(session: aiohttp.ClientSession, servers: list[Server], path: str, expect: int) -> None:
    pages = {server.name: await fetch_page(session, server, server.base + path) for server in servers}
    first, reference = next(iter(pages.items()))
    ids = [item["orderId"] for item in reference["items"]]
    if reference["totalCount"] != expect or len(ids) != LIMIT:
        raise RuntimeError(f"{first}: totalCount {reference['totalCount']}, {len(ids)} items for {path}")
    for name, page in pages.items():
        if page["totalCount"] != reference["totalCount"] or [i["orderId"] for i in page["items"]] != ids:
            raise RuntimeError(f"{name} and {first} disagree on {path}")
        if page["items"] != reference["items"]:
            raise RuntimeError(f"{name} and {first} return different order resources on {path}")
    print(f"check: {path}: {len(pages)} servers agree (totalCount {expect}, orders {ids[0]}..{ids[-1]})")


# -- report ------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    db_ms: float | None
    requests: int
    client_cpu: float
    others: float


def summarize(rounds: list[Round]) -> Stats:
    latencies = sorted(x for r in rounds for x in r.latencies)
    total = len(latencies)
    return Stats(
        rate=statistics.median(r.rate for r in rounds),
        p50_ms=latencies[total // 2] * 1000,
        p99_ms=latencies[min(total - 1, int(total * 0.99))] * 1000,
        cpu_ms=sum(r.server_cpu for r in rounds) / total * 1000,
        db_ms=None if any(r.db_cpu is None for r in rounds) else sum(r.db_cpu or 0.0 for r in rounds) / total * 1000,
        requests=total,
        client_cpu=max(r.client_cpu for r in rounds),
        others=statistics.mean(r.others for r in rounds),
    )


def _size(orders: int) -> str:
    return f"{orders // 1_000_000}M" if orders % 1_000_000 == 0 else f"{orders // 1000}k"


def verdict(value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    return "PASS" if ok else "FAIL"


# -- main --------------------------------------------------------------------------------------------------


SCENARIOS = {
    "page 1": f"/v3/customers/{_data.HOT_CUSTOMER}/orders?offset=0&limit={LIMIT}",
    "deep page": f"/v3/customers/{_data.HOT_CUSTOMER}/orders?offset={DEEP_OFFSET}&limit={LIMIT}",
}


@dataclass
class Group:
    """One backend's four servers: the gateway and the references on the big database, the gateway on the small."""

    backend: str
    big: dict[str, Any]
    small: dict[str, Any]
    gw: Server
    aio: Server
    fast: Server
    gw_small: Server

    @property
    def servers(self) -> list[Server]:
        return [self.gw, self.aio, self.fast, self.gw_small]

    def plan(self, scenario: str) -> list[Server]:
        return self.servers if scenario == "page 1" else [self.gw, self.aio, self.fast]


def start_group(
    servers: Servers, backend: str, big: dict[str, Any], small: dict[str, Any], prefix: str,
    big_db: str, small_db: str, postgres: bool,
) -> Group:
    """`big_db`/`small_db`: a SQLite path, or a PostgreSQL URL (each server then names its connections)."""
    def database(db: str, name: str) -> tuple[str, str | None]:
        if not postgres:
            return db, None
        app = f"bench-{name}"
        return _data.pg_url(db, application_name=app), app

    def gateway(name: str, label: str, db: str) -> Server:
        url, app = database(db, name)
        return servers.start_gateway(name, label, url if postgres else f"sqlite:///{db}", db_app=app)

    def ref(kind: str, label: str) -> Server:
        port = free_port()
        name = f"{prefix}ref-{kind}"
        url, app = database(big_db, name)
        argv = [sys.executable, str(BENCH / "_refs.py"), kind, url, str(port)]
        return servers.start(name, label, argv, gateway=False, port=port, db_app=app)

    big_label, small_label = _size(big["orders"]), _size(small["orders"])
    return Group(
        backend, big, small,
        gw=gateway(f"{prefix}gateway-big", f"gateway ({big_label} DB)", big_db),
        aio=ref("aiohttp", f"aiohttp ref ({big_label} DB)"),
        fast=ref("fastapi", f"FastAPI ref ({big_label} DB)"),
        gw_small=gateway(f"{prefix}gateway-small", f"gateway ({small_label} DB)", small_db),
    )


async def bench(
    profile: Profile, big: dict[str, Any], small: dict[str, Any], servers: Servers,
    pg: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> bool:
    groups = [start_group(servers, "SQLite", big, small, "", str(_data.paths(big["orders"])[0]),
                          str(_data.paths(small["orders"])[0]), postgres=False)]
    if pg is not None:
        pg_big, pg_small = pg
        groups.append(start_group(servers, "PostgreSQL", pg_big, pg_small, "pg-", pg_big["url"], pg_small["url"],
                                  postgres=True))
    everything = [server for group in groups for server in group.servers]
    print("servers: " + ", ".join(f"{server.name} pid {server.process.pid}" for server in everything)
          + f"; logs in {LOG_DIR}")

    plan = {scenario: [server for group in groups for server in group.plan(scenario)] for scenario in SCENARIOS}
    results: dict[tuple[str, str], list[Round]] = {}
    sessions: dict[str, aiohttp.ClientSession] = {}
    db_cpu: DbCpu | None = None
    try:
        if pg is not None:
            db_cpu = await DbCpu.connect(pg[0]["url"])
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as control:
            for server in everything:
                await wait_ready(control, server, "/readyz" if server.gateway else "/healthz")
            for group in groups:
                await gateway_headers(control, group.gw, group.big)
                await gateway_headers(control, group.gw_small, group.small)
        for server in everything:
            sessions[server.name] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=profile.concurrency, keepalive_timeout=120), timeout=REQUEST_TIMEOUT
            )
        for scenario, path in SCENARIOS.items():
            await check_same_page(sessions[groups[0].gw.name], plan[scenario], path, _data.HOT_ORDERS)
        for scenario, path in SCENARIOS.items():
            for server in plan[scenario]:
                await run_round(sessions[server.name], server, server.base + path, profile.warmup_seconds,
                                profile.max_requests, profile.concurrency, db_cpu)
        print(f"warm-up done; {profile.reps} repetitions of {sum(map(len, plan.values()))} rounds "
              f"(each at most {profile.seconds:g} s or {profile.max_requests:,} requests, "
              f"{profile.concurrency} connections)")
        for rep in range(profile.reps):
            for scenario, path in SCENARIOS.items():
                order = plan[scenario][rep % len(plan[scenario]):] + plan[scenario][: rep % len(plan[scenario])]
                for server in order:
                    done = await run_round(sessions[server.name], server, server.base + path, profile.seconds,
                                           profile.max_requests, profile.concurrency, db_cpu)
                    results.setdefault((scenario, server.name), []).append(done)
            line = ", ".join(
                f"{s.name}/{sc}: {results[(sc, s.name)][-1].rate:.0f}" for sc in SCENARIOS for s in plan[sc]
            )
            print(f"rep {rep + 1}/{profile.reps} req/s: {line}", flush=True)
    finally:
        for session in sessions.values():
            await session.close()
        if db_cpu is not None:
            await db_cpu.close()

    stats = {key: summarize(rounds) for key, rounds in results.items()}
    ok = True
    for group in groups:
        ok = report(group, stats, show_db=pg is not None) and ok
    busiest = max(s.client_cpu for s in stats.values())
    print()
    db_note = ("DB ms/req: the PostgreSQL backends serving it (SQLite runs inside the server process: '-');\n"
               if pg is not None else "")
    print(f"req/s: median over {profile.reps} rounds; p50/p99: over all their requests; CPU ms/req: the server "
          f"process, all threads;\n{db_note}others: cores used meanwhile by processes outside the benchmark (noise), "
          f"mean over rounds; load client peak CPU {busiest:.0%} of one core")
    if busiest > 0.9:
        print("warning: the load client used over 90% of a core: rates may be client-bound")
    if max(s.others for s in stats.values()) > 0.25:
        print("warning: other processes used the CPUs during the rounds: expect noise (see 'others')")
    for group in groups:
        with open(group.gw.log, "rb") as log:
            logged = sum(1 for line in log if b'"event":"request"' in line)
        print(f"{group.backend} gateway request log: {logged:,} lines in {group.gw.log}")
    return ok


def report(group: Group, stats: dict[tuple[str, str], Stats], show_db: bool) -> bool:
    """The table and the ratios of one backend; True when every target is met."""
    gw, aio, fast, gw_small = group.gw, group.aio, group.fast, group.gw_small
    big_label, small_label = _size(group.big["orders"]), _size(group.small["orders"])
    print()
    print(f"== {group.backend} ==")
    db_head = f" {'DB ms/req':>10}" if show_db else ""
    print(f"{'scenario':<10} {'server':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}{db_head} "
          f"{'requests':>9} {'others':>7}")
    for scenario in SCENARIOS:
        for server in group.plan(scenario):
            s = stats[(scenario, server.name)]
            db = ("-" if s.db_ms is None else f"{s.db_ms:.3f}").rjust(11) if show_db else ""
            print(f"{scenario:<10} {server.label:<24} {s.rate:>8.0f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f} "
                  f"{s.cpu_ms:>11.3f}{db} {s.requests:>9} {s.others:>7.2f}")

    def st(scenario: str, server: Server) -> Stats:
        return stats[(scenario, server.name)]

    checks: list[tuple[str, float, str, bool]] = []  # label, value, target text, pass?
    for scenario in SCENARIOS:
        for other, target in ((aio, TARGET_VS_AIOHTTP), (fast, TARGET_VS_FASTAPI)):
            value = st(scenario, gw).rate / st(scenario, other).rate
            name = "aiohttp ref" if other is aio else "FastAPI ref"
            if scenario == "page 1":
                checks.append((f"{scenario}: gateway / {name} req/s", value, f">= {target}x",
                               verdict(value, target, True) == "PASS"))
            else:
                checks.append((f"{scenario}: gateway / {name} req/s", value, "(info)", True))
    deep = st("page 1", gw).rate / st("deep page", gw).rate
    checks.append(("gateway deep / page 1 service time (1/req/s)", deep, f"<= {TARGET_DEEP_VS_PAGE1}x",
                   deep <= TARGET_DEEP_VS_PAGE1))
    checks.append(("gateway deep / page 1 p50 latency", st("deep page", gw).p50_ms / st("page 1", gw).p50_ms,
                   "(info)", True))
    checks.append(("gateway deep / page 1 server CPU per request", st("deep page", gw).cpu_ms / st("page 1", gw).cpu_ms,
                   "(info)", True))
    size = st("page 1", gw_small).rate / st("page 1", gw).rate
    checks.append((f"gateway page 1 {big_label} / {small_label} DB service time (1/req/s)", size,
                   f"<= {TARGET_BIG_VS_SMALL}x", size <= TARGET_BIG_VS_SMALL))
    checks.append((f"gateway page 1 {big_label} / {small_label} DB p50 latency",
                   st("page 1", gw).p50_ms / st("page 1", gw_small).p50_ms, "(info)", True))
    checks.append((f"gateway page 1 {big_label} / {small_label} DB server CPU per request",
                   st("page 1", gw).cpu_ms / st("page 1", gw_small).cpu_ms, "(info)", True))
    page1 = {server.name: st("page 1", server) for server in (gw, aio, fast)}
    if all(s.db_ms is not None for s in page1.values()):
        total = {name: s.cpu_ms + (s.db_ms or 0.0) for name, s in page1.items()}
        for other, name in ((aio, "aiohttp ref"), (fast, "FastAPI ref")):
            checks.append((f"page 1: {name} / gateway CPU per request, server + DB",
                           total[other.name] / total[gw.name], "(info)", True))
    print()
    for label, value, wanted, ok in checks:
        mark = "" if wanted == "(info)" else ("PASS" if ok else "FAIL")
        print(f"{group.backend + ':':<12}{label:<58} {value:>6.2f}x  {wanted:<9} {mark}")
    return all(ok for _, _, _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 orders, 2 repetitions of 1 s rounds")
    parser.add_argument("--orders", type=int, help="orders in the big database (default 1,000,000)")
    parser.add_argument("--reps", type=int, help="repetitions of the interleaved rounds")
    parser.add_argument("--seconds", type=float, help="time bound of one round")
    parser.add_argument("--max-requests", type=int, help="request bound of one round")
    parser.add_argument("--concurrency", type=int, help="connections (requests in flight) per round")
    parser.add_argument("--postgres", metavar="URL",
                        help="also benchmark on PostgreSQL (a local server): postgresql://...?search_path=BASE; "
                             "the data goes to schemas BASE_<orders> and BASE_10000 (default BASE: bench_history)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    profile = Profile(
        orders=args.orders or base.orders,
        reps=args.reps or base.reps,
        seconds=args.seconds or base.seconds,
        max_requests=args.max_requests or base.max_requests,
        warmup_seconds=base.warmup_seconds,
        concurrency=args.concurrency or base.concurrency,
    )
    if profile.orders < _data.HOT_ORDERS or profile.seconds <= 0 or profile.reps < 1 or profile.concurrency < 1:
        parser.error("need --orders >= 10000, --seconds > 0, --reps >= 1, --concurrency >= 1")
    if args.postgres is not None:
        if not args.postgres.startswith(("postgresql://", "postgres://")):
            parser.error("--postgres takes a postgresql:// URL")
        try:
            _data.pg_schema(args.postgres, _data.PG_BASE_SCHEMA)
        except ValueError as exc:
            parser.error(f"--postgres: {exc}")
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs; {profile}")
    started = time.perf_counter()
    small = _data.ensure(_data.HOT_ORDERS)
    big = _data.ensure(profile.orders)
    if big["anchor"] != small["anchor"]:
        raise SystemExit("cached databases were built with different anchors: delete bench/data/ and rerun")
    pg: tuple[dict[str, Any], dict[str, Any]] | None = None
    if args.postgres is not None:
        # The SQLite databases' anchor: the same orders, byte for byte, on both backends.
        pg_small = _data.ensure_postgres(args.postgres, _data.HOT_ORDERS, small["anchor"])
        pg_big = _data.ensure_postgres(args.postgres, profile.orders, big["anchor"])
        pg = (pg_big, pg_small)
    print(f"databases ready in {time.perf_counter() - started:.1f} s")

    servers = Servers()
    # SIGTERM/SIGHUP end the run the way Ctrl-C does, so the finally below stops every server.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        ok = asyncio.run(bench(profile, big, small, servers, pg))
    finally:
        servers.stop_all()
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
