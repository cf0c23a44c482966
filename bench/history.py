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
   every middleware on, the rate limit set far above reach, its JSON request log written to
   bench/data/logs/), the same with rate limiting off (`--rate-limit-per-second 0`), the gateway on the
   small database, and the two references of bench/_refs.py on the big database (bare aiohttp; FastAPI on
   uvicorn, one worker), which serve the same page with no auth, validation or logging.
3. Checks that every server returns the same totalCount and the same orders for each scenario.
4. Warms every server up, then runs rounds with a fixed number of concurrent keep-alive connections
   (aiohttp client), each round bounded in requests and in seconds, interleaved server by server and
   repeated (the server order rotates every repetition): page 1 (offset 0, limit 25) on all five servers,
   the deep page (offset 9900, limit 25) on the four big-database servers, and page 1 re-read with
   If-None-Match of its ETag (every answer a 304) on the big database's gateway.
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

The whale: a third database holds one customer with 300,000 orders (--whale-orders; --no-whale skips it),
measured at the history cache's default budget (GATEWAY_HISTORY_CACHE_BYTES; it used to be beyond it). A fifth
gateway (and a ninth on PostgreSQL, schema <base>_whale300000) serves it; its page 1 and its deepest full page
(offset totalCount - 25) run in the same rotation, and their service times are printed as ratios against the
hot customer's page 1 on the big database's gateway (target: within 2x). Its rounds use as many connections
as the others, unless one request (timed in the warm-up) takes so long that they would overrun the round's
time bound: then as many as fit, at least one (the table's "conns").

"Service time" in the ratios is 1/throughput at the fixed concurrency (the closed loop keeps the server
busy, so that is its time per request); p50 latency ratios are shown beside them for information.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # this checkout's gateway, not the editable install's (_servers.py)
import _data  # noqa: E402
import _layouts  # noqa: E402
from _rounds import DbCpu, Round, Stats, run_round, summarize  # noqa: E402
from _servers import LOG_DIR, Server, Servers, free_port, gateway_headers, gateway_source, wait_ready  # noqa: E402
from gateway.settings import Settings  # noqa: E402

LIMIT = 25
DEEP_OFFSET = 9900
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# A customer beyond the history cache budget is paged in SQL, and its first page loads or counts its index.
WHALE_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=300)
TARGET_WHALE_VS_PAGE1 = 2.0
MIN_WHALE_ORDERS = 100  # its deep page is the last full one

TARGET_VS_AIOHTTP = 1.0
TARGET_VS_FASTAPI = 1.3
TARGET_DEEP_VS_PAGE1 = 2.0
TARGET_BIG_VS_SMALL = 1.2
# The rate limiter (each partner's shared token bucket, at the benchmark's limit far above reach) against a
# gateway with rate limiting off (GATEWAY_RATE_LIMIT_PER_SECOND=0) on the same database, in the same run.
TARGET_LIMITER_ON_VS_OFF = 0.95
# Page 1 re-read with If-None-Match of its current ETag (a 304) against the full page: service time.
REREAD = "page 1, 304"
TARGET_REREAD_VS_PAGE1 = 0.5


@dataclass(frozen=True)
class Profile:
    orders: int
    reps: int
    seconds: float
    max_requests: int
    warmup_seconds: float
    concurrency: int
    whale_orders: int  # 0: no 300k-order customer



FULL = Profile(orders=1_000_000, reps=5, seconds=3.0, max_requests=20_000, warmup_seconds=2.0, concurrency=8,
               whale_orders=_layouts.WHALE_ORDERS)
QUICK = Profile(orders=100_000, reps=2, seconds=1.0, max_requests=5_000, warmup_seconds=0.5, concurrency=8,
                whale_orders=_layouts.WHALE_ORDERS)


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
    gw_unlimited: Server  # the gateway on the big database with rate limiting off
    whale: dict[str, Any] | None = None
    gw_whale: Server | None = None  # the gateway on the database of the customer above the cache budget

    @property
    def servers(self) -> list[Server]:
        return ([self.gw, self.aio, self.fast, self.gw_small, self.gw_unlimited]
                + ([self.gw_whale] if self.gw_whale else []))

    def plan(self, scenario: str) -> list[Server]:
        if scenario == "page 1":
            return [self.gw, self.aio, self.fast, self.gw_small, self.gw_unlimited]
        if scenario == "deep page":
            return [self.gw, self.aio, self.fast, self.gw_unlimited]
        if scenario == REREAD:
            return [self.gw]
        return [self.gw_whale] if self.gw_whale else []  # the whale's scenarios


def whale_scenarios(orders: int) -> dict[str, str]:
    """Page 1 and the deepest full page (offset may go up to totalCount) of the whale customer."""
    path = f"/v3/customers/{_layouts.WHALE_CUSTOMER}/orders"
    return {
        f"{_size(orders)} page 1": f"{path}?offset=0&limit={LIMIT}",
        f"{_size(orders)} deep page": f"{path}?offset={orders - LIMIT}&limit={LIMIT}",
    }


def whale_connections(latency: float, profile: Profile) -> int:
    """As many connections as every other round, unless one request takes so long that they would overrun
    the round's time bound: then as many as fit in it, at least one. A server busy for seconds a request is
    kept busy by one connection, so 1/req/s is still its service time."""
    return max(1, min(profile.concurrency, int(profile.seconds / latency)))


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"


def start_group(
    servers: Servers, backend: str, big: dict[str, Any], small: dict[str, Any], prefix: str,
    big_db: str, small_db: str, postgres: bool, whale: tuple[dict[str, Any], str] | None = None,
) -> Group:
    """`big_db`/`small_db` (and the whale's database): a SQLite path, or a PostgreSQL URL (each server then
    names its connections)."""
    def database(db: str, name: str) -> tuple[str, str | None]:
        if not postgres:
            return db, None
        app = f"bench-{name}"
        return _data.pg_url(db, application_name=app), app

    def gateway(name: str, label: str, db: str, flags: tuple[str, ...] = ()) -> Server:
        url, app = database(db, name)
        return servers.start_gateway(name, label, url if postgres else f"sqlite:///{db}", db_app=app, flags=flags)

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
        gw_unlimited=gateway(f"{prefix}gateway-unlimited", f"gw, no rate limit ({big_label})", big_db,
                             ("--rate-limit-per-second", "0")),
        whale=whale[0] if whale else None,
        gw_whale=gateway(f"{prefix}gateway-whale", f"gateway ({_size(whale[0]['orders'])} customer)", whale[1])
        if whale else None,
    )


async def bench(
    profile: Profile, big: dict[str, Any], small: dict[str, Any], whale: dict[str, Any] | None, servers: Servers,
    pg: tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None = None,
) -> bool:
    sqlite_whale = (whale, str(_data.paths(whale["orders"], "whale")[0])) if whale else None
    groups = [start_group(servers, "SQLite", big, small, "", str(_data.paths(big["orders"])[0]),
                          str(_data.paths(small["orders"])[0]), postgres=False, whale=sqlite_whale)]
    if pg is not None:
        pg_big, pg_small, pg_whale = pg
        groups.append(start_group(servers, "PostgreSQL", pg_big, pg_small, "pg-", pg_big["url"], pg_small["url"],
                                  postgres=True, whale=(pg_whale, pg_whale["url"]) if pg_whale else None))
    everything = [server for group in groups for server in group.servers]
    print("servers: " + ", ".join(f"{server.name} pid {server.process.pid}" for server in everything)
          + f"; logs in {LOG_DIR}")

    whales = whale_scenarios(whale["orders"]) if whale else {}
    scenarios = SCENARIOS | {REREAD: SCENARIOS["page 1"]} | whales
    tags: dict[str, str] = {}  # each gateway's current ETag of page 1
    plan = {scenario: [server for group in groups for server in group.plan(scenario)] for scenario in scenarios}
    connections = {(scenario, server.name): profile.concurrency for scenario in scenarios for server in plan[scenario]}
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
                await gateway_headers(control, group.gw_unlimited, group.big)
                if group.gw_whale and group.whale:
                    await gateway_headers(control, group.gw_whale, group.whale)
        for server in everything:
            whale_server = any(server is group.gw_whale for group in groups)
            sessions[server.name] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=profile.concurrency, keepalive_timeout=120),
                timeout=WHALE_REQUEST_TIMEOUT if whale_server else REQUEST_TIMEOUT,
            )
        totals = dict.fromkeys(SCENARIOS, _data.HOT_ORDERS) | dict.fromkeys(whales, whale["orders"] if whale else 0)
        for scenario, path in (SCENARIOS | whales).items():
            await check_same_page(sessions[plan[scenario][0].name], plan[scenario], path, totals[scenario])
        for server in plan[REREAD]:
            async with sessions[server.name].get(server.base + SCENARIOS["page 1"], headers=server.headers()) as page:
                tags[server.name] = page.headers["ETag"]
        for scenario, path in SCENARIOS.items():
            for server in plan[scenario]:
                await run_round(sessions[server.name], server, server.base + path, profile.warmup_seconds,
                                profile.max_requests, profile.concurrency, db_cpu)
        for scenario, path in whales.items():
            for server in plan[scenario]:
                # One request on one connection: the warm-up, and the measure of how many connections fit.
                probe = await run_round(sessions[server.name], server, server.base + path, profile.warmup_seconds,
                                        1, 1, db_cpu)
                connections[(scenario, server.name)] = whale_connections(probe.latencies[0], profile)
                print(f"{server.name}/{scenario}: one request took {probe.latencies[0]:.3f} s: "
                      f"{connections[(scenario, server.name)]} connection(s) in its rounds")
        print(f"warm-up done; {profile.reps} repetitions of {sum(map(len, plan.values()))} rounds "
              f"(each at most {profile.seconds:g} s or {profile.max_requests:,} requests, "
              f"{profile.concurrency} connections)")
        for rep in range(profile.reps):
            for scenario, path in scenarios.items():
                order = plan[scenario][rep % len(plan[scenario]):] + plan[scenario][: rep % len(plan[scenario])]
                for server in order:
                    done = await run_round(sessions[server.name], server, server.base + path, profile.seconds,
                                           profile.max_requests, connections[(scenario, server.name)], db_cpu,
                                           tags[server.name] if scenario == REREAD else None)
                    results.setdefault((scenario, server.name), []).append(done)
            line = ", ".join(
                f"{s.name}/{sc}: {_rate(results[(sc, s.name)][-1].rate)}" for sc in scenarios for s in plan[sc]
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
        if group.gw_whale is not None:
            ok = report_whale(group, group.gw_whale, whales, stats, connections) and ok
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
    for scenario in [*SCENARIOS, REREAD]:
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
    for scenario in SCENARIOS:
        on_off = st(scenario, gw).rate / st(scenario, group.gw_unlimited).rate
        checks.append((f"{scenario}: rate limits on / off req/s (ratios kept)", on_off,
                       f">= {TARGET_LIMITER_ON_VS_OFF}x", on_off >= TARGET_LIMITER_ON_VS_OFF))
    reread = st("page 1", gw).rate / st(REREAD, gw).rate
    checks.append(("gateway 304 re-read / page 1 service time (1/req/s)", reread, f"<= {TARGET_REREAD_VS_PAGE1}x",
                   reread <= TARGET_REREAD_VS_PAGE1))
    checks.append(("gateway 304 re-read / page 1 server CPU per request", st(REREAD, gw).cpu_ms / st("page 1", gw).cpu_ms,
                   "(info)", True))
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


def report_whale(group: Group, server: Server, whales: dict[str, str], stats: dict[tuple[str, str], Stats],
                 connections: dict[tuple[str, str], int]) -> bool:
    """The whale customer's rows and its ratios against the hot customer's page 1 on the big database's
    gateway, measured in the same run; True when every target is met."""
    assert group.whale is not None
    budget = Settings.history_cache_bytes // 2**20
    whale_label, hot_label = _size(group.whale["orders"]), _size(_data.HOT_ORDERS)
    print()
    print(f"{group.backend}: the {whale_label}-order customer, on a gateway of its own at the default history cache "
          f"budget ({budget:,} MiB)")
    print(f"{'scenario':<15} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms/req':>11} {'DB ms/req':>10} "
          f"{'requests':>9} {'conns':>6}")
    for scenario in whales:
        s = stats[(scenario, server.name)]
        db = "-" if s.db_ms is None else f"{s.db_ms:.3f}"
        print(f"{scenario:<15} {_rate(s.rate):>8} {s.p50_ms:>9.2f} {s.p99_ms:>9.2f} {s.cpu_ms:>11.3f} {db:>10} "
              f"{s.requests:>9} {connections[(scenario, server.name)]:>6}")
    hot = stats[("page 1", group.gw.name)]
    ok = True
    for scenario in whales:
        s = stats[(scenario, server.name)]
        checks = [
            (f"{scenario} / {hot_label} page 1 service time (1/req/s)", hot.rate / s.rate,
             f"<= {TARGET_WHALE_VS_PAGE1}x"),
            (f"{scenario} / {hot_label} page 1 p50 latency", s.p50_ms / hot.p50_ms, "(info)"),
            (f"{scenario} / {hot_label} page 1 server CPU per request", s.cpu_ms / hot.cpu_ms, "(info)"),
        ]
        for label, value, wanted in checks:
            passed = wanted == "(info)" or value <= TARGET_WHALE_VS_PAGE1
            ok = ok and passed
            mark = "" if wanted == "(info)" else ("PASS" if passed else "FAIL")
            print(f"{group.backend + ':':<12}{label:<58} {value:>6.2f}x  {wanted:<9} {mark}")
    print(f"{group.backend + ':':<12}({hot_label} page 1: the {hot_label}-order customer's, on the gateway of the "
          f"{_size(group.big['orders'])} DB, in the table above)")
    return ok


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
                             "the data goes to schemas BASE_<orders> and BASE_10000 (default BASE: bench_history), "
                             "the whale's to BASE_whale<orders>")
    parser.add_argument("--whale-orders", type=int,
                        help=f"orders of the whale customer, measured against the default history cache budget "
                             f"(default {_layouts.WHALE_ORDERS:,}; its database takes some 30 s to build once)")
    parser.add_argument("--no-whale", action="store_true", help="skip the whale customer (no build, no rounds)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    profile = Profile(
        orders=args.orders or base.orders,
        reps=args.reps or base.reps,
        seconds=args.seconds or base.seconds,
        max_requests=args.max_requests or base.max_requests,
        warmup_seconds=base.warmup_seconds,
        concurrency=args.concurrency or base.concurrency,
        whale_orders=0 if args.no_whale else args.whale_orders or base.whale_orders,
    )
    if profile.orders < _data.HOT_ORDERS or profile.seconds <= 0 or profile.reps < 1 or profile.concurrency < 1:
        parser.error("need --orders >= 10000, --seconds > 0, --reps >= 1, --concurrency >= 1")
    if profile.whale_orders and profile.whale_orders < MIN_WHALE_ORDERS:
        parser.error(f"need --whale-orders >= {MIN_WHALE_ORDERS} (or --no-whale)")
    _data.check_postgres_argument(parser, args.postgres, _data.PG_BASE_SCHEMA)
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs; {profile}")
    print(f"gateway code: {gateway_source()}")
    started = time.perf_counter()
    small = _data.ensure(_data.HOT_ORDERS)
    big = _data.ensure(profile.orders)
    if big["anchor"] != small["anchor"]:
        raise SystemExit("cached databases were built with different anchors: delete bench/data/ and rerun")
    whale = (_data.ensure(profile.whale_orders, kind="whale", layout=_layouts.whale_layout)
             if profile.whale_orders else None)
    pg: tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None = None
    if args.postgres is not None:
        # The SQLite databases' anchor: the same orders, byte for byte, on both backends.
        pg_small = _data.ensure_postgres(args.postgres, _data.HOT_ORDERS, small["anchor"])
        pg_big = _data.ensure_postgres(args.postgres, profile.orders, big["anchor"])
        pg_whale = (_data.ensure_postgres(args.postgres, profile.whale_orders, whale["anchor"], kind="whale",
                                          layout=_layouts.whale_layout) if whale else None)
        pg = (pg_big, pg_small, pg_whale)
    print(f"databases ready in {time.perf_counter() - started:.1f} s")

    servers = Servers()
    # SIGTERM/SIGHUP end the run the way Ctrl-C does, so the finally below stops every server.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        ok = asyncio.run(bench(profile, big, small, whale, servers, pg))
    finally:
        servers.stop_all()
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
