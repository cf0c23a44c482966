"""A database that cannot serve now (locked past the busy timeout, a full disk) answers 503 with
Retry-After in the error shape, stores nothing, and the same X-Correlation-Id succeeds once it can."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import (
    ROOT,
    UNLIMITED,
    POSTGRES_URL,
    TEST_SIGNING_KEY,
    cli,
    customer_record,
    locked_elsewhere,
    order_record,
    partner_headers,
    process_headers,
    reseller_record,
    seed_with_cli,
    server_process,
    sqlite_only,
)
from gateway.app import create_app
from gateway.settings import Settings

ORDERS = "/v3/customers/C1/orders"
NEW = {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 1}]}
BUSY_TIMEOUT = 0.3  # seconds: the test's locks outlast it


async def gateway(aiohttp_client: Any, db_url: str, busy_timeout: float = BUSY_TIMEOUT) -> Any:
    settings = Settings(**UNLIMITED, database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                        db_busy_timeout_seconds=busy_timeout)
    return await aiohttp_client(create_app(settings))


async def seeded(make_partner: Any, load: Any) -> Any:
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    return partner


async def assert_unavailable(response: Any) -> None:
    body = await response.json()
    assert response.status == 503, body
    assert body["code"] == "503" and set(body) == {"code", "message", "additionalDetails", "invalidFields"}
    assert int(response.headers["Retry-After"]) >= 1


@contextlib.contextmanager
def write_lock(db_url: str) -> Iterator[None]:
    """Another process's write transaction, held until the block ends."""
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_write_lock_held_past_the_busy_timeout(aiohttp_client: Any, make_partner: Any, load: Any,
                                                       db_url: str) -> None:
    sqlite_only(db_url, "holds SQLite's write lock from another connection")
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url)
    headers = await partner_headers(client, partner)
    with write_lock(db_url):
        await assert_unavailable(await client.post(ORDERS, json=NEW, headers=headers))
        await assert_unavailable(await client.post(ORDERS, json=NEW, headers=headers))  # not stored: again 503
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503 and not_ready.headers["Retry-After"] == "1"
        listed = await client.get(ORDERS, headers=headers)  # readers are not blocked by a writer
        assert listed.status == 200 and (await listed.json())["totalCount"] == 0
    assert (await client.get("/readyz")).status == 200
    placed = await client.post(ORDERS, json=NEW, headers=headers)
    assert placed.status == 201 and "Idempotent-Replayed" not in placed.headers
    again = await client.post(ORDERS, json=NEW, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (await (await client.get(ORDERS, headers=headers)).json())["totalCount"] == 1


async def test_a_write_queued_behind_one_that_waits_waits_no_longer_than_the_busy_timeout(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """Writes queue for SQLite's one writer. One that came while another waited for a locked database used to
    wait for that one's whole busy timeout, then its own: nearly twice the timeout (after /readyz, which gives
    up on its probe at 2 s, a PATCH took 8 s of a 5 s timeout). Each now waits its own busy timeout at most."""
    sqlite_only(db_url, "holds SQLite's write lock from another connection")
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=2.0)
    headers = await partner_headers(client, partner)
    loop = asyncio.get_running_loop()

    async def timed(key: str) -> float:
        started = loop.time()
        await assert_unavailable(await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": key}))
        return loop.time() - started

    with write_lock(db_url):
        first = asyncio.create_task(timed("first"))
        await asyncio.sleep(1.2)
        second = await timed("second")
        assert await first < 2.5
    assert second < 2.5, second  # it was 2.8 s: the first's remaining 0.8 s, then its own 2 s


async def test_a_write_queued_behind_ones_that_gave_up_still_waits_its_own_busy_timeout(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """Each write waits its own busy timeout from when it came: one that came late is not cut short by the
    earlier ones' deadlines (a transaction used to wait only what its first write had left)."""
    sqlite_only(db_url, "holds SQLite's write lock from another connection")
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=2.0)
    headers = await partner_headers(client, partner)

    async def post(key: str, after: float) -> int:
        await asyncio.sleep(after)
        response = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": key})
        return response.status

    with write_lock(db_url):
        posts = asyncio.gather(post("early", 0.0), post("soon-after", 0.1), post("late", 1.6))
        await asyncio.sleep(2.4)  # the early ones have given up; the late one has 1.2 s left
    assert await posts == [503, 503, 201]


async def test_a_write_behind_a_long_one_of_the_same_process_is_not_given_up(db_url: str) -> None:
    """Only a lock held by another process makes a write give up: one queued behind this process's own long
    transaction (a purge of many events, say) runs once that ends, however long it took."""
    sqlite_only(db_url, "the SQLite writer's queue")
    from gateway.storage.sqlite import open_sqlite

    long_count = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
                  "SELECT count(*) FROM c")

    async def long_unit(db: Any) -> Any:
        return await db.fetch(long_count)

    async def short_unit(db: Any) -> Any:
        return await db.fetch("SELECT 1")

    async with open_sqlite(db_url, busy_timeout_seconds=0.2) as backend:
        started = asyncio.get_running_loop().time()
        first = asyncio.create_task(backend.write(long_unit))
        await asyncio.sleep(0.05)
        assert await backend.write(short_unit) == [(1,)]
        assert asyncio.get_running_loop().time() - started > 0.2  # it did wait longer than the busy timeout
        assert await first == [(2_000_000,)]


async def test_a_patch_refused_by_a_locked_database_is_not_stored(aiohttp_client: Any, make_partner: Any,
                                                                  load: Any, db_url: str) -> None:
    sqlite_only(db_url, "holds SQLite's write lock from another connection")
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url)
    headers = await partner_headers(client, partner)
    order_id = (await (await client.post(ORDERS, json=NEW, headers=headers)).json())["orderId"]
    patch = {"headers": {**headers, "X-Correlation-Id": "patch-1"}, "json": {"externalReferenceId": "PO-1"}}
    with write_lock(db_url):
        await assert_unavailable(await client.patch(f"{ORDERS}/{order_id}", **patch))
    updated = await client.patch(f"{ORDERS}/{order_id}", **patch)
    assert updated.status == 200 and "Idempotent-Replayed" not in updated.headers
    assert (await updated.json())["externalReferenceId"] == "PO-1"


async def limited(aiohttp_client: Any, make_partner: Any, load: Any, db_url: str,
                  busy_timeout: float) -> tuple[Any, dict[str, str]]:
    """A gateway with a rate limit of 5 a second (a burst of 10) and a partner's headers."""
    partner = await seeded(make_partner, load)
    settings = Settings(database_url=db_url, jwt_secret=TEST_SIGNING_KEY, db_busy_timeout_seconds=busy_timeout,
                        rate_limit_per_second=5, rate_limit_burst=10)
    client = await aiohttp_client(create_app(settings))
    return client, await partner_headers(client, partner)


async def test_a_rate_limit_file_locked_by_another_process_is_waited_for(aiohttp_client: Any, make_partner: Any,
                                                                         load: Any, db_url: str) -> None:
    """The buckets are written on the event loop, which must not wait: while another process writes their
    file, the take goes to a thread that waits within the busy timeout, and still reaches the shared bucket."""
    sqlite_only(db_url, "holds the lock of SQLite's rate-limit file from another connection")
    client, headers = await limited(aiohttp_client, make_partner, load, db_url, busy_timeout=3.0)
    holder = sqlite3.connect(f"{db_url.removeprefix('sqlite:///')}-rate-limits", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.3, holder.close)  # the other process's write ends
    response = await client.get(ORDERS, headers=headers)
    assert response.status == 200
    assert response.headers["RateLimit-Remaining"] == "9"  # taken from the shared bucket, not made up


def buckets_locked(db_url: str) -> Any:
    """Another process's lock on the rate-limit buckets, held until the block ends."""
    return locked_elsewhere(db_url, "rate_buckets", "-rate-limits")


async def test_buckets_out_of_reach_hold_up_one_request_not_every_one(aiohttp_client: Any, make_partner: Any,
                                                                      load: Any, db_url: str) -> None:
    """While the shared buckets cannot be reached, the process admits the partner on its own and asks the bucket
    again only every few seconds. A take that gave up brought a lease already over, so every second a request
    (and every request of the partner queued behind it) waited the whole busy timeout again."""
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=0.5)
    headers = await partner_headers(client, partner)
    loop = asyncio.get_running_loop()
    latencies = []
    async with buckets_locked(db_url):
        until = loop.time() + 4.0
        while loop.time() < until and len(latencies) < 3000:
            started = loop.time()
            response = await client.get(ORDERS, headers=headers)
            assert response.status == 200, await response.text()
            latencies.append(loop.time() - started)
    slow = [round(latency, 2) for latency in latencies if latency >= 0.4]
    # The first ask only (and, on a busy machine, room for one stall); it was one every second, 3 in 4 s.
    assert len(slow) <= 2 and slow[0] < 1.0, slow
    assert (await client.get(ORDERS, headers=headers)).status == 200


async def test_the_steps_of_a_request_share_one_busy_timeout(aiohttp_client: Any, make_partner: Any, load: Any,
                                                            db_url: str) -> None:
    """A request's steps that give up (here the rate limit's take from the shared bucket, then the write)
    wait within one busy timeout together, and so do those of the partner's other requests, which waited
    for that take: each step used to get its own, and with both out of reach every 503 came after twice
    the timeout."""
    client, headers = await limited(aiohttp_client, make_partner, load, db_url, busy_timeout=1.0)
    loop = asyncio.get_running_loop()

    async def timed(number: int) -> tuple[int, float]:
        started = loop.time()
        response = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": f"both-{number}"})
        await assert_unavailable(response)
        return response.status, loop.time() - started

    async with buckets_locked(db_url), locked_elsewhere(db_url, "orders"):
        answers = await asyncio.gather(*(timed(number) for number in range(4)))
    # The take's 1 s (which the others wait for), then one short try of each write; it was 2 s.
    assert all(1.0 <= waited < 1.7 for _, waited in answers), answers


async def test_reads_waiting_for_a_history_load_that_gives_up_wait_within_their_busy_timeout(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """Reads of one customer wait for the one load of its history; when it gives up, each tries itself with
    what its wait left of its busy timeout. Each try used to get a whole timeout: the third read's 503 came
    after 2.4 s of a 1 s timeout."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite's readers do not wait for a writer")
    client, headers = await limited(aiohttp_client, make_partner, load, db_url, busy_timeout=1.0)
    loop = asyncio.get_running_loop()

    async def timed(delay: float) -> float:
        await asyncio.sleep(delay)
        started = loop.time()
        await assert_unavailable(await client.get(ORDERS, headers=headers))
        return loop.time() - started

    async with locked_elsewhere(db_url, "orders"):
        waited = await asyncio.gather(*(timed(delay) for delay in (0.0, 0.3, 0.6)))
    assert all(waited_one < 1.7 for waited_one in waited), waited


async def test_a_step_that_waited_and_got_through_leaves_the_next_its_whole_busy_timeout(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """Only steps that give up are charged to the request: the take waits 0.6 s for the buckets and gets
    them, then the write waits for the orders until 1.1 s. Charged for the take, the write was cut at 1 s
    (503, and the same on every resend of a request that meets such a database)."""
    client, headers = await limited(aiohttp_client, make_partner, load, db_url, busy_timeout=1.0)

    async def held(lock: Any, seconds: float, taken: asyncio.Event) -> None:
        async with lock:
            taken.set()
            await asyncio.sleep(seconds)

    taken = [asyncio.Event(), asyncio.Event()]
    holders = [asyncio.create_task(held(buckets_locked(db_url), 0.6, taken[0])),
               asyncio.create_task(held(locked_elsewhere(db_url, "orders"), 1.1, taken[1]))]
    await asyncio.gather(*(event.wait() for event in taken))
    response = await client.post(ORDERS, json=NEW, headers=headers)
    await asyncio.gather(*holders)
    assert response.status == 201, await response.text()


async def test_buckets_out_of_reach_a_partner_is_admitted_at_its_rate_not_more(aiohttp_client: Any, make_partner: Any,
                                                                                load: Any, db_url: str) -> None:
    """While the process makes its leases up (the buckets were out of reach a moment ago), it admits the
    partner's rate per second: a made-up lease spent early is not followed by another at once."""
    client, headers = await limited(aiohttp_client, make_partner, load, db_url, busy_timeout=0.5)
    loop = asyncio.get_running_loop()
    async with buckets_locked(db_url):
        assert (await client.get(ORDERS, headers=headers)).status == 200  # the take gave up: made up
    started, statuses = loop.time(), []
    while loop.time() - started < 2.5 and len(statuses) < 3000:
        statuses.append((await client.get(ORDERS, headers=headers)).status)
    elapsed = loop.time() - started + 1.0  # and the first lease's second
    assert statuses.count(200) + 1 <= (10 + 5 * elapsed) * 1.1, statuses.count(200)  # it was every request
    assert set(statuses) == {200, 429}


async def test_a_busy_timeout_of_0_still_writes(aiohttp_client: Any, make_partner: Any, load: Any,
                                               db_url: str) -> None:
    """0 means: do not wait for a busy database. A COMMIT, the server's own write, still gets its time: on
    PostgreSQL it was given none, and every write was 503 (no answer to COMMIT)."""
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=0.0)
    headers = await partner_headers(client, partner)
    placed = await client.post(ORDERS, json=NEW, headers=headers)
    assert placed.status == 201, await placed.text()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A filesystem of 2 MB that the test can fill: a tmpfs mount (needs root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk(aiohttp_client: Any, small_disk: Path) -> None:
    db_url = f"sqlite:///{small_disk}/gateway.db"
    credential = seed_with_cli(db_url, small_disk.parent)
    client = await gateway(aiohttp_client, db_url)
    headers = await process_headers(client, credential, "unused")
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as out:
        while True:
            out.write(b"\0" * 65536)
    answers = []
    for n in range(40):
        response = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": f"full-{n}"})
        answers.append(response.status)
        if response.status == 503:
            await assert_unavailable(response)
            break
    assert answers[-1] == 503 and set(answers) <= {201, 503}, answers
    filler.unlink()
    retried = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": f"full-{len(answers) - 1}"})
    assert retried.status == 201 and "Idempotent-Replayed" not in retried.headers
    history = await (await client.get(f"{ORDERS}?limit=100", headers=headers)).json()
    assert history["totalCount"] == len(answers)  # every 201 stored once, and the 503's order by its retry


async def _terminate_backends(admin_url: str, application_name: str, stop: asyncio.Event) -> int:
    """Terminates the gateway's own PostgreSQL backends (never the server) every half second; how many."""
    import asyncpg

    connection = await asyncpg.connect(admin_url)
    terminated = 0
    try:
        while not stop.is_set():
            rows = await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", application_name
            )
            terminated += len(rows)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), TERMINATE_EVERY_SECONDS)
    finally:
        await connection.close()
    return terminated


TERMINATE_EVERY_SECONDS = 0.5
FAULT_SECONDS = 5.0


async def test_postgres_backends_terminated_under_load(aiohttp_client: Any, make_partner: Any, load: Any,
                                                       db_url: str) -> None:
    if db_url.startswith("sqlite://"):
        pytest.skip("terminates PostgreSQL backends")
    partner = await seeded(make_partner, load)
    name = f"gw-fault-{uuid.uuid4().hex[:8]}"
    client = await gateway(aiohttp_client, f"{db_url}&application_name={name}", busy_timeout=1.0)
    headers = await partner_headers(client, partner)
    stop = asyncio.Event()
    killer = asyncio.create_task(_terminate_backends(POSTGRES_URL, name, stop))
    answers: dict[str, int] = {}
    placed: dict[str, str] = {}
    deadline = asyncio.get_running_loop().time() + FAULT_SECONDS

    async def writer(worker: int) -> None:
        for n in itertools.count():
            if asyncio.get_running_loop().time() > deadline:
                return
            key = f"fault-{worker}-{n}"
            response = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": key})
            answers[key] = response.status
            if response.status == 201:
                placed[key] = (await response.json())["orderId"]
            elif response.status == 503:
                await assert_unavailable(response)
            listed = await client.get(ORDERS, headers=headers)
            assert listed.status in (200, 503), await listed.text()

    await asyncio.gather(*(writer(worker) for worker in range(4)))
    stop.set()
    assert await killer > 0  # the fault did happen
    assert set(answers.values()) <= {201, 503}, answers
    for key, status in answers.items():  # the same correlation id succeeds once the database can serve
        if status == 503:
            again = await client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": key})
            assert again.status == 201, await again.text()
            placed[key] = (await again.json())["orderId"]
    history = await (await client.get(f"{ORDERS}?limit=1", headers=headers)).json()
    assert len(set(placed.values())) == len(answers) == history["totalCount"]  # each stored exactly once


IMPORT_ORDERS = 30_000


def test_a_purge_that_finds_the_database_locked_logs_one_warning_line(db_url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The background purge tries again at its next interval: an outage is a warning naming the reason, not
    an error with a traceback for every try."""
    sqlite_only(db_url, "holds SQLite's write lock from another connection")
    monkeypatch.setenv("GATEWAY_IDEMPOTENCY_PURGE_INTERVAL_SECONDS", "0.2")
    monkeypatch.setenv("GATEWAY_DB_BUSY_TIMEOUT_SECONDS", "0.2")
    log_path = tmp_path / "server.log"
    with server_process(db_url, log_path=log_path), write_lock(db_url):
        deadline = time.monotonic() + 10
        while b"purge_failed" not in log_path.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
    failures = [line for line in map(json.loads, log_path.read_text().splitlines()) if line["event"] == "purge_failed"]
    assert failures, log_path.read_text()
    assert all(line["level"] == "warning" and "locked" in line["reason"] and "exception" not in line
               for line in failures), failures


def test_an_import_is_not_cut_short_at_the_busy_timeout(db_url: str, tmp_path: Path) -> None:
    """A write's statements give up at the busy timeout (a server that stops answering holds no request),
    but an import's may rightly take longer: with a busy timeout of 0, a large one still writes everything."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite's import runs on its writer thread, with no deadline on its statements")
    seed_with_cli(db_url, tmp_path)
    records = [order_record(f"{7_300_000_000 + n}", "C1", "2024-01-02T03:04:05Z") for n in range(IMPORT_ORDERS)]
    source = tmp_path / "orders.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    imported = cli(db_url, "import", str(source), env={**os.environ, "GATEWAY_DB_BUSY_TIMEOUT_SECONDS": "0"})
    assert json.loads(imported.stdout)["written"] == IMPORT_ORDERS


async def test_an_import_whose_connection_is_lost_writes_nothing(db_url: str, tmp_path: Path) -> None:
    """The import reads its records as it goes: run again after a lost connection, it would write only the
    records left, and commit half a file. It fails instead (exit 1, one line), and nothing is written."""
    if db_url.startswith("sqlite://"):
        pytest.skip("terminates PostgreSQL backends")
    import asyncpg

    cli(db_url, "partners", "create", "--name", "Importer", "--partner-id", "PI")
    customer = tmp_path / "customer.jsonl"
    customer.write_text("".join(json.dumps(record) + "\n" for record in (reseller_record("RI", "PI"),
                                                                       customer_record("CI", "RI"))))
    cli(db_url, "import", str(customer))
    records = [order_record(f"{8_000_000_000 + n}", "CI", "2024-01-02T03:04:05Z") for n in range(IMPORT_ORDERS)]
    source = tmp_path / "orders.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    name = f"gw-import-{uuid.uuid4().hex[:8]}"
    importing = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", f"{db_url}&application_name={name}",
                                  "import", str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        for _ in range(600):  # until the import is writing, then cut its connection
            if await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND "
                                    "xact_start IS NOT NULL", name):
                await asyncio.sleep(0.3)
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                                    name)
                break
            await asyncio.sleep(0.05)
        out, err = await asyncio.to_thread(importing.communicate, timeout=120)
    finally:
        await admin.close()
    assert importing.returncode == 1 and len(err.splitlines()) == 1 and "nothing was written" in err, err
    reader = await asyncpg.connect(db_url)
    try:
        assert await reader.fetchval("SELECT count(*) FROM orders WHERE customer_id = 'CI'") == 0
    finally:
        await reader.close()


class Relay:
    """A loopback TCP relay to the PostgreSQL server that can go silent: it then drops the connections it
    carries and takes new ones without ever answering, as a server that hangs."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.silent, self.frozen = target_port, False, False
        self._links: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def go_silent(self) -> None:
        self.silent = True
        for writer in self._links:
            writer.close()

    def freeze(self) -> None:
        """Silent without dropping a connection: what is sent on them is never answered."""
        self.silent = self.frozen = True

    async def close(self) -> None:
        self.go_silent()
        self._server.close()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.append(writer)
        if self.silent:
            await reader.read()  # taken, never answered
            return
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._links.append(upstream)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while (data := await source.read(65536)) and not self.frozen:
                    sink.write(data)
                while data:  # frozen: taken, never passed on
                    data = await source.read(65536)
            sink.close()

        await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))


@contextlib.asynccontextmanager
async def relayed(db_url: str) -> AsyncIterator[tuple[Relay, str]]:
    """The test's PostgreSQL database behind a Relay, and the URL that reaches it through the relay."""
    parts = urlsplit(db_url)
    relay = Relay(parts.port or 5432)
    try:
        yield relay, urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{await relay.start()}"))
    finally:
        await relay.close()


@contextlib.asynccontextmanager
async def frozen(aiohttp_client: Any, db_url: str, partner: Any) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """A gateway (busy timeout 1 s, a rate limit out of reach) that has read once through a Relay to the
    database, which has just frozen, and the partner's headers."""
    async with relayed(db_url) as (relay, url):
        settings = Settings(database_url=url, jwt_secret=TEST_SIGNING_KEY, db_busy_timeout_seconds=1.0,
                            rate_limit_per_second=1000, rate_limit_burst=1000)
        client = await aiohttp_client(create_app(settings))
        headers = await partner_headers(client, partner)
        assert (await client.get(ORDERS, headers=headers)).status == 200
        relay.freeze()
        yield client, headers


async def test_a_server_that_stops_answering_gets_503_within_the_busy_timeout(aiohttp_client: Any, make_partner: Any,
                                                                             load: Any, db_url: str) -> None:
    if db_url.startswith("sqlite://"):
        pytest.skip("a PostgreSQL server that hangs")
    partner = await seeded(make_partner, load)
    async with relayed(db_url) as (relay, url):
        client = await gateway(aiohttp_client, url, busy_timeout=1.0)
        headers = await partner_headers(client, partner)
        assert (await client.get(ORDERS, headers=headers)).status == 200
        relay.go_silent()
        started = asyncio.get_running_loop().time()
        response = await client.get(ORDERS, headers=headers)
        await assert_unavailable(response)
        assert asyncio.get_running_loop().time() - started < 3.0  # not asyncpg's 60 s connect timeout


async def test_a_server_that_hangs_mid_connection_gets_503_within_the_busy_timeout(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """The server keeps its connections open and stops answering on them. A read, the rate limit's take from
    the shared bucket (a write, once the allowance it leased has run out) and an order's write each give up at
    the busy timeout: 503, or a limit kept locally, never a request that waits for ever."""
    if db_url.startswith("sqlite://"):
        pytest.skip("a PostgreSQL server that hangs")
    async with frozen(aiohttp_client, db_url, await seeded(make_partner, load)) as (client, headers):
        await asyncio.sleep(1.2)  # the rate limit's lease has run out: the next request takes from the bucket
        for method, body in (("GET", None), ("POST", NEW)):
            started = asyncio.get_running_loop().time()
            response = await asyncio.wait_for(client.request(method, ORDERS, json=body, headers=headers), 20)
            await assert_unavailable(response)
            # At most: the take (1 s, and 0.5 s for the server to cancel it), then the request's read with
            # what is left of the request's busy timeout, at least 0.2 s. Each step had 1 s of its own: 2.9 s.
            assert asyncio.get_running_loop().time() - started < 3.0, method


async def test_a_read_behind_one_that_hangs_waits_only_its_own_busy_timeout(aiohttp_client: Any, make_partner: Any,
                                                                             load: Any, db_url: str) -> None:
    """Reads asked for at once share a statement (gateway.storage.key_batches), and the next one goes out when
    the one on its way comes back. When that one hangs, the next goes out anyway, a moment later: a read that
    came after it waits its own busy timeout, neither until the end of both nor only what was left of the
    first request's."""
    if db_url.startswith("sqlite://"):
        pytest.skip("a PostgreSQL server that hangs (SQLite reads by key inline, one at a time)")
    async with frozen(aiohttp_client, db_url, await seeded(make_partner, load)) as (client, headers):
        async def timed(delay: float) -> float:
            await asyncio.sleep(delay)
            started = asyncio.get_running_loop().time()
            await assert_unavailable(await asyncio.wait_for(client.get(ORDERS, headers=headers), 20))
            return asyncio.get_running_loop().time() - started

        first, second = await asyncio.gather(timed(0), timed(0.6))
        # Each: its 1 s, and up to 0.5 s for the server to cancel. The second used to give up with the first
        # (its statement went out with the first's budget, spent), 0.6 s after it asked.
        assert 0.9 < second < 1.7, (first, second)


async def test_a_write_cut_at_the_busy_timeout_is_cancelled_on_the_server(aiohttp_client: Any, make_partner: Any,
                                                                          load: Any, db_url: str) -> None:
    """A PATCH waiting for its order's lock past the busy timeout is 503, and safe to resend. Its statement
    used to go on waiting on the server (closing the connection dropped the driver's cancel request), with
    the key claimed: every resend was 409 4122 until the lock came free."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite's writers are one at a time: no lock of an order to wait for")
    import asyncpg
    from gateway.storage.postgres_db import lock_key

    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=0.5)
    headers = await partner_headers(client, partner)
    order_id = (await (await client.post(ORDERS, json=NEW, headers=headers)).json())["orderId"]
    patch = {"headers": {**headers, "X-Correlation-Id": "patch-cut"}, "json": {"externalReferenceId": "PO-1"}}
    other = await asyncpg.connect(db_url)
    try:
        schema = await other.fetchval("SELECT current_schema()")
        await other.execute("BEGIN")
        await other.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, f"order\x1f{order_id}"))
        for _ in range(2):  # the second is 503 too, not 4122: the first one's statement was cancelled
            await assert_unavailable(await client.patch(f"{ORDERS}/{order_id}", **patch))
        waiting = await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND wait_event = 'advisory' AND datname = current_database()")
        assert waiting == 0
        await other.execute("ROLLBACK")
    finally:
        await other.close()
    updated = await client.patch(f"{ORDERS}/{order_id}", **patch)
    assert updated.status == 200 and (await updated.json())["externalReferenceId"] == "PO-1"


@pytest.mark.parametrize("busy_timeout", [60.0, 0.2])
async def test_a_patch_during_an_import_of_its_order_keeps_what_the_import_wrote(aiohttp_client: Any,
                                                                                make_partner: Any, load: Any,
                                                                                db_url: str, tmp_path: Path,
                                                                                busy_timeout: float) -> None:
    """An import replaces orders without their locks: a PATCH that read the order while the import ran wrote
    back what it had read over the import's version. It gives way to the import, then reads and writes; or,
    when the import outlasts the busy timeout, it is 503, and nothing of it is written or stored."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite writers are one at a time")
    import asyncpg

    partner = await seeded(make_partner, load)
    await load([order_record("7100000000", "C1", "2024-01-02T03:04:05Z", status="1002")])
    replaced = order_record("7100000000", "C1", "2024-01-02T03:04:05Z", status="1000", subscriptions=["SUB-NEW"])
    others = [order_record(f"{7_200_000_000 + n}", "C1", "2024-01-02T03:04:05Z") for n in range(IMPORT_ORDERS)]
    source = tmp_path / "orders.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in [replaced, *others]))
    client = await gateway(aiohttp_client, db_url, busy_timeout=busy_timeout)
    headers = await partner_headers(client, partner)
    name = f"gw-import-{uuid.uuid4().hex[:8]}"
    importing = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", f"{db_url}&application_name={name}",
                                  "import", str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        while not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND "
                                       "query LIKE '%INSERT INTO orders%'", name):
            assert importing.poll() is None, importing.communicate()
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
    assert importing.poll() is None  # the PATCH goes while the import is writing
    patched = await client.patch(f"{ORDERS}/7100000000", json={"externalReferenceId": "P"}, headers=headers)
    waited = busy_timeout > 1
    if waited:
        assert patched.status == 200, await patched.text()
    else:
        await assert_unavailable(patched)
    assert (await asyncio.to_thread(importing.communicate, timeout=120)) and importing.returncode == 0
    order = await (await client.get(f"{ORDERS}/7100000000", headers=headers)).json()
    assert (order["status"], order["externalReferenceId"]) == ("1000", "P" if waited else "")
    assert order["lineItems"][0]["subscriptionId"] == "SUB-NEW"


async def test_statements_the_server_gives_up_on_get_503(aiohttp_client: Any, make_partner: Any, load: Any,
                                                         db_url: str) -> None:
    """A statement the server cancels (a `lock_timeout` or `statement_timeout` given in the database URL, an
    operator's pg_cancel_backend) is a database that cannot serve now: retried within the busy timeout, then
    503. It was 500, and the wait for an order's lock that timed out was taken for a claimed correlation id."""
    if db_url.startswith("sqlite://"):
        pytest.skip("PostgreSQL's lock_timeout and pg_cancel_backend")
    import asyncpg
    from gateway.storage.postgres_db import lock_key

    partner = await seeded(make_partner, load)
    timing_out = await gateway(aiohttp_client, f"{db_url}&lock_timeout=100", busy_timeout=0.6)
    patient = await gateway(aiohttp_client, db_url, busy_timeout=0.6)
    headers = await partner_headers(timing_out, partner)

    def headers_for(key: str) -> dict[str, str]:
        return {**headers, "X-Correlation-Id": key}

    order_id = (await (await timing_out.post(ORDERS, json=NEW, headers=headers)).json())["orderId"]
    patch = {"headers": {**headers, "X-Correlation-Id": "patch-locked"}, "json": {"externalReferenceId": "PO-1"}}
    other = await asyncpg.connect(db_url)
    try:
        schema = await other.fetchval("SELECT current_schema()")
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, f"order\x1f{order_id}"))
            await other.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            await assert_unavailable(await timing_out.patch(f"{ORDERS}/{order_id}", **patch))
            await assert_unavailable(await timing_out.post(ORDERS, json=NEW, headers=headers_for("post-locked")))
            # Without a lock_timeout, the wait is the operator's to cancel.
            sent = asyncio.create_task(patient.post(ORDERS, json=NEW, headers=headers_for("post-cancelled")))
            cancelled = 0
            while not cancelled and not sent.done():
                await asyncio.sleep(0.02)
                cancelled = await other.fetchval(
                    "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND application_name = $1 AND wait_event_type = 'Lock'", schema)
            await assert_unavailable(await sent)
            assert cancelled
    finally:
        await other.close()
    assert (await timing_out.patch(f"{ORDERS}/{order_id}", **patch)).status == 200


async def test_a_commit_waits_what_its_statements_left_of_the_busy_timeout(aiohttp_client: Any, make_partner: Any,
                                                                           load: Any, db_url: str) -> None:
    """A COMMIT (which waits for the lock that numbers events) gets what its write's statements left of the
    busy timeout, at least 1 s. It had a whole timeout of its own: statements that waited nearly the timeout
    and got through were followed by a COMMIT that waited as long again (5.5 s here, for a 3 s timeout)."""
    if db_url.startswith("sqlite://"):
        pytest.skip("PostgreSQL numbers events at COMMIT, under a lock")
    import asyncpg

    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=3.0)
    headers = await partner_headers(client, partner)
    loop, taken = asyncio.get_running_loop(), asyncio.Event()

    async def orders_held() -> None:
        async with locked_elsewhere(db_url, "orders"):
            taken.set()
            await asyncio.sleep(2.5)

    other = await asyncpg.connect(db_url)
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock(hashtextextended('gateway events in ' || "
                                "current_schema(), 0))")
            holder = asyncio.create_task(orders_held())
            await taken.wait()
            started = loop.time()
            await assert_unavailable(await client.post(ORDERS, json=NEW, headers=headers))
            waited = loop.time() - started
            await holder
    finally:
        await other.close()
    assert 3.0 <= waited < 4.5, waited  # 2.5 s of statements, then 1 s of COMMIT and its cancellation


async def test_a_commit_cut_at_the_busy_timeout_is_cancelled_on_the_server(aiohttp_client: Any, make_partner: Any,
                                                                           load: Any, db_url: str) -> None:
    """A COMMIT waiting past the busy timeout (for the lock that numbers events) is 503, its outcome unknown to
    the gateway. It used to go on waiting on the server and commit once the lock came free: resends were
    409 4122 meanwhile, and a client that gave up after the 503 had an order after all. It is cancelled now."""
    if db_url.startswith("sqlite://"):
        pytest.skip("PostgreSQL numbers events at COMMIT, under a lock")
    import asyncpg

    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=0.5)
    headers = {**await partner_headers(client, partner), "X-Correlation-Id": "commit-cut"}
    other = await asyncpg.connect(db_url)
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock(hashtextextended('gateway events in ' || "
                                "current_schema(), 0))")
            await assert_unavailable(await client.post(ORDERS, json=NEW, headers=headers))
            resent = await client.post(ORDERS, json=NEW, headers=headers)
            assert resent.status == 503, await resent.text()  # not 4122: nothing holds the key any more
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.3)  # a COMMIT still waiting would have committed by now
        assert await other.fetchval("SELECT count(*) FROM orders") == 0
    finally:
        await other.close()
    placed = await client.post(ORDERS, json=NEW, headers=headers)
    assert placed.status == 201 and "Idempotent-Replayed" not in placed.headers


async def test_failed_authentications_out_of_reach_are_still_counted_by_the_process(
        aiohttp_client: Any, make_partner: Any, load: Any, db_url: str) -> None:
    """The failures every process shares are kept beside the buckets; while those cannot be reached, a token
    request waits the busy timeout for them, then the process's own count still locks the client id out."""
    partner = await seeded(make_partner, load)
    client = await gateway(aiohttp_client, db_url, busy_timeout=0.2)
    form = {"grant_type": "client_credentials", "client_id": partner.api_key, "client_secret": "wrong"}
    async with locked_elsewhere(db_url, "auth_failures", "-rate-limits"):
        assert (await client.post("/ims/token/v3", data={**form, "client_secret": partner.client_secret})).status == 200
        for _ in range(10):
            assert (await client.post("/ims/token/v3", data=form)).status == 401
        refused = await client.post("/ims/token/v3", data={**form, "client_secret": partner.client_secret})
        assert refused.status == 429 and (await refused.json())["error"] == "invalid_client"
