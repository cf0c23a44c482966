"""Order-creation benchmark: durable creations/s, then replays/s of the same requests, in one run.

    .venv/bin/python bench/create.py [--seconds 10] [--concurrency 64] [--max-orders 20000] [--processes N]
    .venv/bin/python bench/create.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_create'

Starts --processes gateways (`order-gateway serve`, through bench/_servers.py: this checkout's code, the rate
limit set far above any reachable rate; default one process on SQLite, two on PostgreSQL) on a fresh SQLite
database under bench/data/create/, spreads --concurrency keep-alive connections over them (connection i to
process i mod N), places orders with unique X-Correlation-Ids (each a 201 only after the order and its stored
answer are committed: SQLite with synchronous=FULL, PostgreSQL with the server's synchronous_commit), then
sends every one of those requests again, each to be replayed. Both phases are bounded by --seconds and
--max-orders; a short warm-up (creations and their replays) comes first.

Checked: every creation is a 201 without Idempotent-Replayed, every replay a 201 with it and the creation's
body byte for byte; afterwards the distinct orderIds equal the 201s, and so does the growth of the
customer's history totalCount as every process answers it. Targets, per backend and from the same run:
creations/s >= 1000 and replay/create >= 3.0x. Printed too: the gateways' CPU ms per request and the cores
used by the gateways, this client and everything else (the machine is shared). Loopback only.

--database URL runs it on the given database instead (as it is: nothing is reset). --postgres URL then runs
it on PostgreSQL, in a fresh schema: the URL's search_path (default bench_create), dropped and created first.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]  # this checkout's gateway, not the editable install's
import _data  # noqa: E402
from _servers import (ROOT, Server, Servers, client_cpu, gateway_bin, gateway_headers,  # noqa: E402
                      gateway_source, server_env, system_busy, wait_ready)

RUN_DIR = _data.DATA_DIR / "create"
CUSTOMER = "BENCH-C"  # with --customers N: BENCH-C0 .. BENCH-C{N-1}, order n for customer n mod N


def customers(count: int) -> list[str]:
    return [CUSTOMER] if count == 1 else [f"{CUSTOMER}{i}" for i in range(count)]
TARGET_RATE = 1000.0  # durable creations/s, at least
TARGET_RATIO = 3.0  # replays/s over creations/s, at least
PG_DEFAULT_SCHEMA = "bench_create"
PROCESSES = {"SQLite": 1, "PostgreSQL": 2}
WARMUP_ORDERS = 64
WARMUP_SECONDS = 5.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
SAMPLE_CHARS = 200


def _body(n: int) -> dict[str, object]:
    """The creation body of order n (bench/mixed.py creates with it too)."""
    return {"orderType": "NEW", "currencyCode": "USD", "externalReferenceId": f"BENCH-{n}",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "65304479CA01A12", "quantity": 1 + n % 5},
                          {"extLineItemNumber": 2, "offerId": "80004567CA01A12", "quantity": 1}]}


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the gateway processes, of this client and of the rest of the machine. A snapshot holds
    the machine's total busy time in `other`; since() turns two snapshots into what each used in between."""

    gateways: float = 0.0
    client: float = 0.0
    other: float = 0.0

    @classmethod
    def now(cls, gateways: list[Server]) -> Cpu:
        return cls(sum(server.cpu_seconds() for server in gateways), client_cpu(), system_busy())

    def since(self, start: Cpu) -> Cpu:
        gateways, client = self.gateways - start.gateways, self.client - start.client
        return Cpu(gateways, client, max(0.0, self.other - start.other - gateways - client))


@dataclass
class Phase:
    name: str
    answers: dict[int, bytes] = field(default_factory=dict)  # order n: its creation's body (b"" for a replay)
    errors: Counter[str] = field(default_factory=Counter)  # what was wrong: count
    samples: dict[str, str] = field(default_factory=dict)  # the first body of each error
    seconds: float = 0.0
    cpu: Cpu = Cpu()

    @property
    def count(self) -> int:
        return len(self.answers)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """The gateways' CPU per expected answer."""
        return self.cpu.gateways * 1000 / max(1, self.count)

    @property
    def cores(self) -> tuple[float, float, float]:
        """The cores used by the gateways, this client and everything else over the phase."""
        seconds = self.seconds or float("inf")  # a phase that did not run used nothing
        return self.cpu.gateways / seconds, self.cpu.client / seconds, self.cpu.other / seconds

    def error(self, what: str, sample: str) -> None:
        self.errors[what] += 1
        self.samples.setdefault(what, sample[:SAMPLE_CHARS])


@dataclass
class Result:
    backend: str
    processes: int
    phases: list[Phase]  # warm-up, warm-up replay, create, replay
    check: str
    consistent: bool

    @property
    def create(self) -> Phase:
        return self.phases[2]

    @property
    def replay(self) -> Phase:
        return self.phases[3]

    @property
    def ratio(self) -> float:
        return self.replay.rate / self.create.rate if self.create.rate else 0.0

    @property
    def ok(self) -> bool:
        clean = not any(phase.errors for phase in self.phases)
        return clean and self.consistent and self.create.rate >= TARGET_RATE and self.ratio >= TARGET_RATIO


@dataclass
class Bench:
    """What every phase shares."""

    session: aiohttp.ClientSession
    gateways: list[Server]
    run_id: str  # in every correlation id: a reused database must not answer this run's creations as replays
    concurrency: int
    customers: list[str]


# -- the load ----------------------------------------------------------------------------------------------


def _problem(status: int, replayed: bool, body: bytes, expected: bytes | None) -> str | None:
    """What is wrong with an answer: a creation must be a 201 without Idempotent-Replayed, a replay
    (`expected` is the creation's body) a 201 with it and that body byte for byte."""
    if status != 201:
        return f"status {status}"
    if replayed != (expected is not None):
        return "Idempotent-Replayed on a creation" if replayed else "no Idempotent-Replayed on a replay"
    if expected is not None and body != expected:
        return "replay body differs from the creation's"
    return None


async def _send(bench: Bench, phase: Phase, server: Server, auth: dict[str, str], n: int,
                expected: bytes | None) -> None:
    headers = {**auth, "X-Correlation-Id": f"create-{bench.run_id}-{n}"}
    try:
        customer = bench.customers[n % len(bench.customers)]
        async with bench.session.post(f"{server.base}/v3/customers/{customer}/orders", json=_body(n),
                                      headers=headers) as response:
            body = await response.read()
            replayed = response.headers.get("Idempotent-Replayed") == "true"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        phase.error(type(exc).__name__, str(exc))
        return
    problem = _problem(response.status, replayed, body, expected)
    if problem is not None:
        phase.error(problem, body.decode("utf-8", "replace"))
    else:
        # Only the creations' bodies are kept: the replays' are compared with them, then dropped.
        phase.answers[n] = body if expected is None else b""


async def run_phase(bench: Bench, name: str, keys: list[int], seconds: float,
                    expected: dict[int, bytes] | None) -> Phase:
    """Orders `keys`, in order, over every connection (connection i to gateway i mod the count), until all
    are sent or `seconds` are over (the requests in flight then finish). Replays when `expected` is given."""
    phase = Phase(name)
    queue = iter(keys)  # shared: each key is sent once, by whichever connection is free
    start = Cpu.now(bench.gateways)
    started = time.perf_counter()
    deadline = started + seconds

    async def connection(index: int) -> None:
        server = bench.gateways[index % len(bench.gateways)]
        auth = server.headers()
        for n in queue:
            if time.perf_counter() > deadline:
                return
            await _send(bench, phase, server, auth, n, None if expected is None else expected[n])

    await asyncio.gather(*(connection(i) for i in range(bench.concurrency)))
    phase.seconds = time.perf_counter() - started
    phase.cpu = Cpu.now(bench.gateways).since(start)
    for server in bench.gateways:
        server.check_alive()
    return phase


async def total_count(session: aiohttp.ClientSession, server: Server, customer_ids: list[str]) -> int:
    """The customers' history totalCounts added up, as this gateway process answers them (one order a page)."""
    total = 0
    for customer in customer_ids:
        url = f"{server.base}/v3/customers/{customer}/orders?limit=1"
        async with session.get(url, headers=server.headers()) as response:
            if response.status != 200:
                raise RuntimeError(f"{server.name}: {url} answered {response.status}: {await response.text()}")
            total += int((await response.json())["totalCount"])
    return total


def consistency(creations: list[Phase], grown: list[int]) -> tuple[str, bool]:
    """The 201s of the creations against their distinct orderIds and each process's totalCount growth."""
    created = sum(phase.count for phase in creations)
    distinct = len({json.loads(body)["orderId"] for phase in creations for body in phase.answers.values()})
    ok = distinct == created and all(g == created for g in grown)
    text = (f"{created:,} creations answered 201 (warm-up included), {distinct:,} distinct orderIds; the customer's "
            "totalCount grew by " + ", ".join(f"{g:,}" for g in grown) + " (per gateway process)")
    return ("" if ok else "MISMATCH: ") + text, ok


async def run_backend(backend: str, gateways: list[Server], partner: dict[str, str],
                      args: argparse.Namespace) -> Result:
    """The warm-up, the two measured phases and the consistency check, on the started gateways."""
    run_id = uuid.uuid4().hex[:8]
    connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        for server in gateways:
            await wait_ready(session, server, "/readyz")
            await gateway_headers(session, server, partner, prefix=f"create-{run_id}-{server.name}")
        bench = Bench(session, gateways, run_id, args.concurrency, customers(args.customers))
        before = [await total_count(session, server, bench.customers) for server in gateways]
        warm = await run_phase(bench, "warm-up", list(range(-WARMUP_ORDERS, 0)), WARMUP_SECONDS, None)
        warm_replay = await run_phase(bench, "warm-up replay", sorted(warm.answers), WARMUP_SECONDS, warm.answers)
        print(f"{backend}: warm-up done; phases of at most {args.seconds:g} s or {args.max_orders:,} orders, "
              f"{args.concurrency} connections over {len(gateways)} gateway process(es)", flush=True)
        create = await run_phase(bench, "create", list(range(args.max_orders)), args.seconds, None)
        print(f"{backend}: create {create.rate:.0f}/s", flush=True)
        replay = await run_phase(bench, "replay", sorted(create.answers), args.seconds, create.answers)
        after = [await total_count(session, server, bench.customers) for server in gateways]
    check, ok = consistency([warm, create], [a - b for a, b in zip(after, before)])
    return Result(backend, len(gateways), [warm, warm_replay, create, replay], check, ok)


# -- the report --------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(result: Result) -> None:
    print(f"{'phase':<15} {'orders':>7} {'seconds':>8} {'per second':>11} {'gw CPU ms/order':>16} "
          f"{'cores: gateways':>16} {'client':>7} {'other':>6} {'errors':>7}")
    for phase in result.phases:
        cores = phase.cores
        print(f"{phase.name:<15} {phase.count:>7} {phase.seconds:>8.2f} {phase.rate:>11.0f} {phase.cpu_ms:>16.2f} "
              f"{cores[0]:>16.2f} {cores[1]:>7.2f} {cores[2]:>6.2f} {sum(phase.errors.values()):>7}")
        for what, count in phase.errors.items():
            print(f"  {phase.name}: {count} x {what}; first: {phase.samples[what]!r}")
    print(f"gateway CPU: {result.create.cpu_ms:.2f} ms per creation, {result.replay.cpu_ms:.2f} ms per replay")
    if max(phase.cores[1] for phase in result.phases) > 0.9:
        print("warning: the load client used over 90% of a core: rates may be client-bound")
    print(f"check: {result.check}")
    print(f"target: creations/s {result.create.rate:.0f} (>= {TARGET_RATE:.0f}, durable) "
          f"{_verdict(result.create.rate >= TARGET_RATE)}")
    print(f"target: replay/create {result.ratio:.2f}x (>= {TARGET_RATIO:.1f}x) "
          f"{_verdict(result.ratio >= TARGET_RATIO)}")


def summary(results: list[Result]) -> None:
    print(f"{'backend':<11} {'processes':>9} {'create/s':>9} {'replay/s':>9} {'replay/create':>14} "
          f"{'ms/create':>10} {'ms/replay':>10}  verdict")
    for r in results:
        print(f"{r.backend:<11} {r.processes:>9} {r.create.rate:>9.0f} {r.replay.rate:>9.0f} {r.ratio:>13.2f}x "
              f"{r.create.cpu_ms:>10.2f} {r.replay.cpu_ms:>10.2f}  {_verdict(r.ok)}")
    print(f"(targets: create/s >= {TARGET_RATE:.0f}, replay/create >= {TARGET_RATIO:.1f}x, no errors, counts "
          "consistent; ms = gateway CPU per request)")


# -- databases and servers ---------------------------------------------------------------------------------


def _cli(db_url: str, *args: str) -> str:
    """`order-gateway --database URL ...` with the servers' environment (this checkout's code)."""
    command = [gateway_bin(), "--database", db_url, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=server_env()).stdout


def seed(db_url: str, customer_count: int) -> dict[str, str]:
    """A partner with a reseller and the customers the orders are for; the partner's credential."""
    partner: dict[str, str] = json.loads(_cli(db_url, "partners", "create", "--name", "Bench"))
    records = [{"type": "reseller", "resellerId": "BENCH-R", "partnerId": partner["partnerId"], "name": "R"}]
    records += [{"type": "customer", "customerId": customer, "resellerId": "BENCH-R", "companyName": "C"}
                for customer in customers(customer_count)]
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "seed.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    _cli(db_url, "import", str(RUN_DIR / "seed.jsonl"))
    return partner


async def _fresh_schema(url: str) -> str:
    """The URL of a fresh (dropped and created) schema named by its search_path."""
    import asyncpg

    schema = _data.pg_schema(url, PG_DEFAULT_SCHEMA)
    if schema in ("public", "pg_catalog", "information_schema"):
        raise SystemExit(f"--postgres: search_path={schema} would be dropped: name a schema of the benchmark's own")
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await connection.close()
    return _data.pg_url(url, schema)


async def _pg_durability(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return ", ".join([f"{name}={await connection.fetchval(f'SHOW {name}')}"
                          for name in ("fsync", "synchronous_commit", "full_page_writes")])
    finally:
        await connection.close()


def durability(db_url: str) -> str:
    """Why a 201 is durable: the gateway's SQLite pragma (this checkout's), or the PostgreSQL server's settings."""
    if db_url.startswith("sqlite://"):
        from gateway.storage.sqlite import PRAGMAS

        return "; ".join(p for p in PRAGMAS if "synchronous" in p or "journal_mode" in p)
    return asyncio.run(_pg_durability(db_url))


def bench_one(backend: str, db_url: str, processes: int, args: argparse.Namespace) -> Result:
    """Seeds the database, starts the gateways on it, measures, stops them (whatever happened) and reports."""
    partner = seed(db_url, args.customers)
    print(f"{backend}: database {db_url}; durability: {durability(db_url)}; orders spread over "
          f"{args.customers} customer(s)")
    servers = Servers()
    try:
        prefix = "create-pg" if backend == "PostgreSQL" else "create-sqlite"
        gateways = [servers.start_gateway(f"{prefix}-{n + 1}", f"gateway {n + 1}", db_url) for n in range(processes)]
        print(f"{backend}: gateways " + ", ".join(f"{g.name} pid {g.process.pid} port {g.port}" for g in gateways))
        result = asyncio.run(run_backend(backend, gateways, partner, args))
    finally:
        servers.stop_all()
    report(result)
    return result


# -- command line ------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound of each phase (default 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections, over all processes (default 64)")
    parser.add_argument("--max-orders", type=int, default=20_000, help="count bound of each phase (default 20000)")
    parser.add_argument("--processes", type=int, help="gateway processes on the one database "
                                                      "(default 1 on SQLite, 2 on PostgreSQL)")
    parser.add_argument("--customers", type=int, default=1,
                        help="customers the orders are spread over (default 1: one customer's creations commit one "
                             "after another, on its version row)")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file under bench/data/create)")
    parser.add_argument("--postgres", metavar="URL",
                        help="then the same on PostgreSQL, in a fresh schema: the URL's search_path "
                             f"(default {PG_DEFAULT_SCHEMA}), dropped and created first")
    args = parser.parse_args(argv)
    if min(args.concurrency, args.max_orders, args.processes or 1, args.customers) < 1 or args.seconds <= 0:
        parser.error("need --seconds > 0 and --concurrency, --max-orders, --processes, --customers >= 1")
    _data.check_postgres_argument(parser, args.postgres, PG_DEFAULT_SCHEMA)
    return args


def first_database(args: argparse.Namespace) -> tuple[str, str]:
    """(backend, URL) of the first run: --database as it is, else a fresh SQLite file."""
    if args.database:
        return ("SQLite" if args.database.startswith("sqlite://") else "PostgreSQL"), args.database
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    return "SQLite", f"sqlite:///{RUN_DIR}/create.db"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}; gateway code: {gateway_source()}")
    # SIGTERM/SIGHUP end the run the way Ctrl-C does, so the servers are stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    started = time.perf_counter()
    backend, url = first_database(args)
    results = [bench_one(backend, url, args.processes or PROCESSES[backend], args)]
    if args.postgres is not None:
        print()
        url = asyncio.run(_fresh_schema(args.postgres))
        results.append(bench_one("PostgreSQL", url, args.processes or PROCESSES["PostgreSQL"], args))
    print()
    summary(results)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
