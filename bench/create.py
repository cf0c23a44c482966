"""Order-creation benchmark: durable orders/s, then replays/s of the same requests, in one run.

    .venv/bin/python bench/create.py [--seconds 5] [--concurrency 8] [--max-orders 5000]
    .venv/bin/python bench/create.py --postgres 'postgresql://postgres@127.0.0.1:5432/test?search_path=bench_create'

Starts the gateway (`order-gateway serve`) on a fresh SQLite database under bench/data/, places orders with
unique X-Correlation-Ids (each a 201 after the order and its stored answer are committed with
synchronous=FULL), then sends every one of those requests again (each a byte-identical replay). Both phases
are bounded in count and in time; the target is replays/s >= 2x creations/s. Loopback only.

--database URL runs that on the given database instead (as it is: nothing is reset). --postgres URL runs
it again afterwards, in the same invocation, on PostgreSQL: in a fresh schema, the URL's search_path
(default bench_create), dropped and created first (every commit durable: the server's synchronous_commit
applies), and prints both results.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "create"
TARGET_RATIO = 2.0
PG_DEFAULT_SCHEMA = "bench_create"

sys.path.insert(0, str(ROOT / "bench"))
import _data  # noqa: E402


@dataclass(frozen=True)
class Result:
    created: int
    create_time: float
    replayed: int
    replay_time: float

    @property
    def create_rate(self) -> float:
        return self.created / self.create_time

    @property
    def replay_rate(self) -> float:
        return self.replayed / self.replay_time

    @property
    def ratio(self) -> float:
        return self.replay_rate / self.create_rate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(db_url: str, *args: str) -> str:
    command = [sys.executable, str(ROOT / "run.py"), "--database", db_url, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def _body(n: int) -> dict[str, object]:
    return {"orderType": "NEW", "currencyCode": "USD", "externalReferenceId": f"BENCH-{n}",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "65304479CA01A12", "quantity": 1 + n % 5},
                          {"extLineItemNumber": 2, "offerId": "80004567CA01A12", "quantity": 1}]}


async def _phase(http: aiohttp.ClientSession, headers: dict[str, str], keys: list[int], seconds: float,
                 concurrency: int, expect_replay: bool) -> tuple[list[int], float]:
    """Sends the requests of `keys` (in order) until done or out of time; returns the keys answered 201."""
    done: list[int] = []
    queue = iter(keys)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        for n in queue:
            if time.perf_counter() > deadline:
                return
            async with http.post("/v3/customers/BENCH-C/orders", json=_body(n),
                                 headers={**headers, "X-Correlation-Id": f"bench-{n}"}) as response:
                await response.read()
                assert response.status == 201, response.status
                assert (response.headers.get("Idempotent-Replayed") == "true") == expect_replay
                done.append(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def _run(base: str, partner: dict[str, str], args: argparse.Namespace) -> Result:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        form = {"grant_type": "client_credentials", "client_id": partner["apiKey"],
                "client_secret": partner["clientSecret"]}
        async with http.post("/ims/token/v3", data=form) as response:
            token = (await response.json())["access_token"]
        headers = {"X-Api-Key": partner["apiKey"], "Authorization": f"Bearer {token}"}
        await _phase(http, headers, list(range(-50, 0)), args.seconds, args.concurrency, False)  # warm-up
        created, create_time = await _phase(http, headers, list(range(args.max_orders)), args.seconds,
                                            args.concurrency, False)
        replayed, replay_time = await _phase(http, headers, sorted(created), args.seconds, args.concurrency, True)
    return Result(len(created), create_time, len(replayed), replay_time)


def _print(result: Result) -> None:
    print(f"{'phase':<10} {'requests':>9} {'seconds':>8} {'per second':>11}")
    print(f"{'create':<10} {result.created:>9} {result.create_time:>8.2f} {result.create_rate:>11.0f}")
    print(f"{'replay':<10} {result.replayed:>9} {result.replay_time:>8.2f} {result.replay_rate:>11.0f}")
    verdict = "PASS" if result.ratio >= TARGET_RATIO else "FAIL"
    print(f"replay/create = {result.ratio:.2f}x (target >= {TARGET_RATIO:.1f}x) {verdict}")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound of each phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-orders", type=int, default=5000, help="count bound of each phase")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file under bench/data)")
    parser.add_argument("--postgres", metavar="URL",
                        help="then the same on PostgreSQL, in a fresh schema: the URL's search_path "
                             f"(default {PG_DEFAULT_SCHEMA}), dropped and created first")
    args = parser.parse_args()
    if args.postgres is not None:
        if not args.postgres.startswith(("postgresql://", "postgres://")):
            parser.error("--postgres takes a postgresql:// URL")
        try:
            _data.pg_schema(args.postgres, PG_DEFAULT_SCHEMA)
        except ValueError as exc:
            parser.error(f"--postgres: {exc}")
    if args.database:
        db_url = args.database
        DATA.mkdir(parents=True, exist_ok=True)
    else:
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        db_url = f"sqlite:///{DATA}/create.db"
    backend = "SQLite" if db_url.startswith("sqlite://") else "PostgreSQL"
    if args.postgres is not None:
        print(f"== {backend} ==")
    results = [(backend, _bench_one(db_url, args, DATA / "gateway.log"))]
    if args.postgres is not None:
        print()
        print("== PostgreSQL ==")
        pg_url = asyncio.run(_fresh_schema(args.postgres))
        results.append(("PostgreSQL", _bench_one(pg_url, args, DATA / "gateway-postgres.log")))
        print()
        print(f"{'backend':<11} {'create/s':>9} {'replay/s':>9} {'replay/create':>14}")
        for backend, result in results:
            verdict = "PASS" if result.ratio >= TARGET_RATIO else "FAIL"
            print(f"{backend:<11} {result.create_rate:>9.0f} {result.replay_rate:>9.0f} {result.ratio:>13.2f}x "
                  f"(target >= {TARGET_RATIO:.1f}x) {verdict}")


def _bench_one(db_url: str, args: argparse.Namespace, log_path: Path) -> Result:
    """Partner and seed data, then the gateway on `db_url` for the two phases; it is stopped at the end."""
    partner = json.loads(_cli(db_url, "partners", "create", "--name", "Bench"))
    records = [{"type": "reseller", "resellerId": "BENCH-R", "partnerId": partner["partnerId"], "name": "R"},
               {"type": "customer", "customerId": "BENCH-C", "resellerId": "BENCH-R", "companyName": "C"}]
    (DATA / "seed.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (DATA / "seed.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    _cli(db_url, "import", str(DATA / "seed.jsonl"))
    port = _free_port()
    log = open(log_path, "wb")
    server = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the gateway did not start") from None
                time.sleep(0.05)
        print(f"database: {db_url}  concurrency: {args.concurrency}")
        result = asyncio.run(_run(f"http://127.0.0.1:{port}", partner, args))
        _print(result)
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    main()
