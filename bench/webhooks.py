"""Webhook benchmark: delivery latency from commit to the receiver, beside a slow endpoint, and deliveries/s.

    .venv/bin/python bench/webhooks.py [--orders 400] [--rate 50] [--connections 8] [--import-orders 5000]
    .venv/bin/python bench/webhooks.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_webhooks'

A receiver runs in this process (bench/_webhook_receiver.py, 127.0.0.1): `/fast` answers 204 at once, `/slow`
after 5 s; it notes when each call arrives and checks its signature. A fresh database (SQLite under
bench/data/webhooks/; with --postgres, then a fresh schema: the URL's search_path, default bench_webhooks) gets
a partner and a webhook to /fast (`webhooks add`). The gateways (bench/_servers.py: this checkout's code, the
rate limit far above reach; one process on SQLite, two on PostgreSQL as in bench/create.py) run with the
default webhook settings (endpoint concurrency 4 unless --endpoint-concurrency, concurrency 32, poll 1 s),
http and loopback targets allowed.

1. Latency alone: --orders orders placed (`POST /v3/customers/{id}/orders`) over --connections keep-alive
   connections (connection i to process i mod N) at a steady --rate per second (0: as fast as they go),
   bounded by --seconds, after a short warm-up. An order's latency is the /fast arrival of its event (the
   first call with its orderId) minus the moment the client had read its 201. The order was committed just
   before the 201 was sent, so this is commit-to-receiver plus at most the 201's trip; a delivery can even
   arrive before the client has read its 201 (a value <= 0, counted). The arrival minus the moment the POST
   was sent is printed too: an upper bound. Printed: p50, p99, max; every order must be delivered.
2. Latency beside a slow endpoint: a second webhook of the same partner, to /slow, then the same phase: every
   event goes to both, the slow webhook fills its endpoint slots (4 per process) for 5 s a call and its
   backlog grows. Printed: the same figures, the slow calls in flight (min-max, sampled every 0.1 s from 1 s
   in) and the slow calls received during the phase. Target: the fast webhook's p99 beside the slow one at
   most 100 ms above its p99 alone, in the same run.
3. Deliveries/s: the slow webhook removed, --import-orders orders imported at once (`import`: one transaction,
   another process, so the gateways find them by polling). Printed: deliveries/s from the import's end (the
   CLI's exit, which can come after the first delivery) to the last arrival, and from the first arrival to the
   last; the gateways' CPU per delivery; this process's CPU share (the receiver's: near 1, the rate is its).

Checked: every event arrives once (no webhook-id twice on /fast), every signature verifies, every POST is a
201. Times: time.perf_counter() of this process, for the client and the receiver alike; both share one event
loop, so either can be noted a little late when it is busy. Loopback only; every process is stopped at the end.
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
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]  # this checkout's gateway, not the editable install's
import _data  # noqa: E402
import create  # noqa: E402
from _servers import (ROOT, Server, Servers, client_cpu, free_port, gateway_headers,  # noqa: E402
                      gateway_source, server_env, wait_ready)
from _webhook_receiver import (LATENCY_HEADER, SLOW_SECONDS, TARGET_EXTRA_P99_MS, Latency,  # noqa: E402
                               Receiver, Result, Throughput, summary, verdict)

RUN_DIR = _data.DATA_DIR / "webhooks"
PG_DEFAULT_SCHEMA = "bench_webhooks"
GATEWAY_FLAGS = ("--webhook-allow-http", "true", "--webhook-allow-private", "true")
CUSTOMER, RESELLER = "WH-C", "WH-R"
IMPORTED_FIRST_ID = 7_100_000_000
WARMUP_ORDERS = 24
DELIVERY_WAIT_SECONDS = 30.0  # for the last deliveries of a phase, after its last 201


# -- the gateway's CLI ---------------------------------------------------------------------------------------


def cli(db_url: str, *args: str) -> str:
    """`run.py --database URL ...` of this checkout; http:// webhooks allowed (the receiver is one)."""
    env = server_env() | {"GATEWAY_WEBHOOK_ALLOW_HTTP": "true"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--database", db_url, *args], check=True,
                          capture_output=True, text=True, cwd=ROOT, env=env).stdout


def seed(db_url: str) -> dict[str, str]:
    """A partner with a reseller and the customer the orders are for; the partner's credential."""
    partner: dict[str, str] = json.loads(cli(db_url, "partners", "create", "--name", "Webhooks"))
    records = [{"type": "reseller", "resellerId": RESELLER, "partnerId": partner["partnerId"], "name": "R"},
               {"type": "customer", "customerId": CUSTOMER, "resellerId": RESELLER, "companyName": "C"}]
    (RUN_DIR / "seed.jsonl").write_text("\n".join(json.dumps(record) for record in records))
    cli(db_url, "import", str(RUN_DIR / "seed.jsonl"))
    return partner


def add_webhook(db_url: str, partner_id: str, receiver: Receiver, path: str) -> str:
    """Registers the receiver's `path` for the partner's events; the webhook id."""
    added = json.loads(cli(db_url, "webhooks", "add", partner_id, receiver.url(path)))
    receiver.secrets[path] = added["secret"]
    return str(added["webhookId"])


def import_file(count: int) -> Path:
    """`count` orders of the customer, in one JSON Lines file (imported in one transaction)."""
    line = {"extLineItemNumber": 1, "offerId": "65304479CA01A12", "quantity": 1, "status": "1000",
            "currencyCode": "USD"}
    order = {"type": "order", "customerId": CUSTOMER, "orderType": "NEW", "status": "1000", "currencyCode": "USD",
             "creationDate": "2026-01-01T00:00:00Z", "referenceOrderId": ""}
    path = RUN_DIR / "orders.jsonl"
    path.write_text("".join(json.dumps({**order, "orderId": str(IMPORTED_FIRST_ID + n), "externalReferenceId": f"WH{n}",
                                        "lineItems": [{**line, "subscriptionId": f"S{n}"}]}) + "\n"
                            for n in range(count)))
    return path


# -- the load ------------------------------------------------------------------------------------------------


@dataclass
class Load:
    session: aiohttp.ClientSession
    gateways: list[Server]
    receiver: Receiver
    args: argparse.Namespace
    next_order: int = 0  # order numbers (create._body) go on across phases


async def send_order(load: Load, server: Server, n: int, phase: Latency,
                     sent: dict[str, tuple[float, float]]) -> None:
    """One creation; its orderId's (POST sent, 201 read) times into `sent`."""
    posted = time.perf_counter()
    try:
        async with load.session.post(f"{server.base}/v3/customers/{CUSTOMER}/orders", json=create._body(n),
                                     headers=server.headers()) as response:
            body = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        phase.errors += 1
        return
    answered = time.perf_counter()
    if response.status != 201:
        phase.errors += 1
        return
    sent[json.loads(body)["orderId"]] = (posted, answered)


async def place_orders(load: Load, phase: Latency, count: int) -> dict[str, tuple[float, float]]:
    """`count` orders at --rate over --connections, within --seconds; orderId: (POST sent, 201 read)."""
    sent: dict[str, tuple[float, float]] = {}
    queue = enumerate(range(load.next_order, load.next_order + count))  # shared by the connections
    load.next_order += count
    started = time.perf_counter()
    deadline = started + load.args.seconds

    async def connection(index: int) -> None:
        server = load.gateways[index % len(load.gateways)]
        for k, n in queue:
            if load.args.rate > 0:
                await asyncio.sleep(max(0.0, started + k / load.args.rate - time.perf_counter()))
            if time.perf_counter() > deadline:
                return
            await send_order(load, server, n, phase, sent)

    await asyncio.gather(*(connection(i) for i in range(load.args.connections)))
    phase.seconds = time.perf_counter() - started
    return sent


async def latency_phase(load: Load, name: str, count: int) -> Latency:
    """Places the orders, waits for their /fast deliveries, and measures them."""
    phase, receiver = Latency(name), load.receiver
    slow_before = receiver.calls["slow"]
    sampler = asyncio.create_task(receiver.sample_slow(phase.slow_in_flight))
    try:
        sent = await place_orders(load, phase, count)
    finally:
        sampler.cancel()
    phase.slow_received = receiver.calls["slow"] - slow_before
    await receiver.wait_for("fast", set(sent), DELIVERY_WAIT_SECONDS)
    phase.add(sent, receiver.first["fast"])
    for gateway in load.gateways:
        gateway.check_alive()
    return phase


async def throughput_phase(load: Load, db_url: str, count: int) -> Throughput:
    """Imports `count` orders while the gateways run; their deliveries to /fast, timed from the import's end."""
    result, receiver = Throughput(count), load.receiver
    wanted = {str(IMPORTED_FIRST_ID + n) for n in range(count)}
    path = import_file(count)
    started = time.perf_counter()
    await asyncio.to_thread(cli, db_url, "import", str(path))
    ended = time.perf_counter()
    cpu, own_cpu = sum(g.cpu_seconds() for g in load.gateways), client_cpu()
    await receiver.wait_for("fast", wanted, DELIVERY_WAIT_SECONDS + count / 100)
    times = sorted(at for order_id, at in receiver.first["fast"].items() if order_id in wanted)
    result.import_seconds, result.delivered = ended - started, len(times)
    if times:
        result.seconds, result.first_wait, result.spread = times[-1] - ended, times[0] - ended, times[-1] - times[0]
    result.gateway_cpu = sum(g.cpu_seconds() for g in load.gateways) - cpu
    result.client_cpu = client_cpu() - own_cpu
    return result


def start_gateways(backend: str, db_url: str, servers: Servers, args: argparse.Namespace) -> list[Server]:
    """create.PROCESSES[backend] gateways on the database, allowed to call the loopback receiver."""
    flags = GATEWAY_FLAGS + (("--webhook-endpoint-concurrency", str(args.endpoint_concurrency))
                             if args.endpoint_concurrency else ())
    return [servers.start_gateway(f"webhooks-{backend.lower()}-{n + 1}", f"gateway {n + 1}", db_url, flags=flags)
            for n in range(create.PROCESSES[backend])]


async def measure(backend: str, db_url: str, servers: Servers, args: argparse.Namespace) -> Result:
    """The three phases on a fresh database; the gateways and the receiver are stopped whatever happens."""
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        partner = await asyncio.to_thread(seed, db_url)
        await asyncio.to_thread(add_webhook, db_url, partner["partnerId"], receiver, "fast")
        gateways = start_gateways(backend, db_url, servers, args)
        connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=120)
        async with aiohttp.ClientSession(connector=connector, timeout=create.REQUEST_TIMEOUT) as session:
            for gateway in gateways:
                await wait_ready(session, gateway, "/readyz")
                await gateway_headers(session, gateway, partner, prefix=f"webhooks-{gateway.name}")
            load = Load(session, gateways, receiver, args)
            await latency_phase(load, "warm-up", WARMUP_ORDERS)
            alone = await latency_phase(load, "alone", args.orders)
            print(f"{backend}: alone done ({alone.placed} orders)", flush=True)
            slow_id = await asyncio.to_thread(add_webhook, db_url, partner["partnerId"], receiver, "slow")
            beside = await latency_phase(load, "beside slow", args.orders)
            print(f"{backend}: beside slow done ({beside.placed} orders)", flush=True)
            await asyncio.to_thread(cli, db_url, "webhooks", "remove", slow_id)
            rate = await throughput_phase(load, db_url, args.import_orders)
        return Result(backend, len(gateways), alone, beside, rate, receiver.duplicates("fast"),
                      sum(receiver.bad_signatures.values()))
    finally:
        await receiver.stop()  # first: the slow calls still in flight then end at once, and so do the gateways
        await asyncio.to_thread(servers.stop_all)


# -- the report ----------------------------------------------------------------------------------------------


def report(result: Result, args: argparse.Namespace) -> None:
    pace = f"{args.rate:g} orders/s" if args.rate > 0 else "unpaced"
    concurrency = args.endpoint_concurrency or "4 (the default)"
    print(f"\n== {result.backend}: {result.processes} gateway process(es), webhook endpoint concurrency "
          f"{concurrency} per process; {args.connections} connections, {pace} ==")
    print(LATENCY_HEADER)
    print(result.alone.row())
    print(result.beside.row())
    print(result.throughput.line())
    print(f"checks: duplicate deliveries {result.duplicates}, bad signatures {result.bad_signatures}, every "
          f"imported order delivered: {'yes' if result.throughput.delivered == result.throughput.orders else 'NO'}")
    print(f"target: fast p99 beside a {SLOW_SECONDS:g} s endpoint - alone = {result.extra_p99:+.1f} ms "
          f"(<= {TARGET_EXTRA_P99_MS:g} ms) {verdict(result.extra_p99 <= TARGET_EXTRA_P99_MS)}")


# -- command line --------------------------------------------------------------------------------------------


def bench_one(backend: str, db_url: str, args: argparse.Namespace) -> Result:
    print(f"{backend}: database {db_url}", flush=True)
    servers = Servers()
    try:
        result = asyncio.run(measure(backend, db_url, servers, args))
    finally:
        servers.stop_all()
    report(result, args)
    return result


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=400, help="orders of each latency phase (default 400)")
    parser.add_argument("--rate", type=float, default=50.0, help="orders/s of the latency phases (0: unpaced)")
    parser.add_argument("--connections", type=int, default=8, help="client connections (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound of each latency phase")
    parser.add_argument("--import-orders", type=int, default=5000, help="orders imported for deliveries/s")
    parser.add_argument("--endpoint-concurrency", type=int, help="the gateways' --webhook-endpoint-concurrency "
                                                                   "(default: theirs, 4)")
    parser.add_argument("--postgres", metavar="URL", help="then on PostgreSQL, in a fresh schema: the URL's "
                                                          f"search_path (default {PG_DEFAULT_SCHEMA})")
    args = parser.parse_args(argv)
    counts = (args.orders, args.connections, args.import_orders,
              1 if args.endpoint_concurrency is None else args.endpoint_concurrency)
    if min(counts) < 1 or args.seconds <= 0 or args.rate < 0:
        parser.error("need --orders, --connections, --import-orders, --endpoint-concurrency >= 1, --seconds > 0 "
                     "and --rate >= 0")
    _data.check_postgres_argument(parser, args.postgres, PG_DEFAULT_SCHEMA)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # end the run as Ctrl-C does, so every process is stopped
        signal.signal(sig, signal.default_int_handler)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}; gateway code: {gateway_source()}")
    started = time.perf_counter()
    results = [bench_one("SQLite", f"sqlite:///{RUN_DIR}/webhooks.db", args)]
    if args.postgres is not None:
        schema = _data.pg_schema(args.postgres, PG_DEFAULT_SCHEMA)
        url = asyncio.run(create._fresh_schema(_data.pg_url(args.postgres, schema)))
        results.append(bench_one("PostgreSQL", url, args))
    summary(results)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
