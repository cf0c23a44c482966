"""What webhooks promise across processes and crashes: every event delivered at least once, a duplicate
only after a crash (and then with the same `webhook-id`), and with several processes each attempt made by
one of them: 1,000 events, 1,000 calls."""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from conftest import ROOT, cli, customer_record, free_port, order_record, reseller_record, server_process
from webhook_receiver import Receiver, receiver

# The guard relaxed for a receiver on loopback; short timeouts and polls so that a test takes seconds.
FLAGS = ("--webhook-allow-http", "true", "--webhook-allow-private", "true", "--webhook-timeout-seconds", "1",
         "--webhook-poll-seconds", "0.2", "--webhook-retry-schedule", "0.5,1,1,1,1,1,1,1,1,1")
ENV = {**os.environ, "GATEWAY_WEBHOOK_ALLOW_HTTP": "true"}
EVENTS = 1000
KILLS = 6
BATCHES, BATCH_ORDERS = 10, 20


def seed(db_url: str, tmp_path: Path, url: str) -> None:
    """Partner P1 with reseller R1 and customer C1, and a webhook of P1's at `url`."""
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    load(db_url, tmp_path / "seed.jsonl", [reseller_record("R1", "P1"), customer_record("C1", "R1")])
    cli(db_url, "webhooks", "add", "P1", url, env=ENV)


def load(db_url: str, path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"\n".join(orjson.dumps(record) for record in records))
    cli(db_url, "import", str(path))


def orders(first: int, count: int) -> list[dict[str, Any]]:
    return [order_record(f"{n:010d}", "C1", "2026-11-01T10:00:00Z") for n in range(first, first + count)]


def event_ids(db_url: str) -> set[str]:
    """Every event P1 can see, read straight from the database."""
    if db_url.startswith("sqlite://"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
            return {row[0] for row in db.execute("SELECT event_id FROM order_events WHERE partner_id = 'P1'")}
    import asyncpg

    async def fetch() -> set[str]:
        connection = await asyncpg.connect(db_url)
        try:
            return {row[0] for row in await connection.fetch("SELECT event_id FROM order_events WHERE partner_id = 'P1'")}
        finally:
            await connection.close()

    return set(asyncio.run(fetch()))


def check_calls(hook: Receiver, expected: set[str]) -> int:
    """Every event delivered; a repeated `webhook-id` always carries its own event. Returns the duplicates."""
    bodies: dict[str, bytes] = {}
    for call in hook.calls:
        webhook_id = call.headers["webhook-id"]
        assert orjson.loads(call.body)["eventId"] == webhook_id
        assert bodies.setdefault(webhook_id, call.body) == call.body
    assert set(bodies) == expected
    return len(hook.calls) - len(bodies)


async def wait_for_all(hook: Receiver, expected: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not expected <= {call.headers["webhook-id"] for call in hook.calls}:
        assert time.monotonic() < deadline, f"{len(expected - {c.headers['webhook-id'] for c in hook.calls})} missing"
        await asyncio.sleep(0.1)


async def test_two_processes_deliver_each_event_once(db_url: str, tmp_path: Path) -> None:
    async with receiver() as hook:
        seed(db_url, tmp_path, hook.url)
        with server_process(db_url, *FLAGS), server_process(db_url, *FLAGS):
            load(db_url, tmp_path / "orders.jsonl", orders(1, EVENTS))
            expected = await asyncio.to_thread(event_ids, db_url)
            assert len(expected) == EVENTS
            await wait_for_all(hook, expected, timeout=60)
            await asyncio.sleep(1.0)  # time for a second delivery of anything, were one coming
        assert check_calls(hook, expected) == 0


@contextlib.contextmanager
def killable(db_url: str) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve", "--port", str(port), *FLAGS],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # listening, so its worker runs: a kill before that would test nothing
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


async def test_sigkill_loses_no_delivery(db_url: str, tmp_path: Path) -> None:
    """Imports write events while the only gateway is SIGKILLed and restarted again and again; deliveries
    are slow enough (50 ms each) that kills land in the middle of calls."""
    async with receiver(lambda call: (204, {}, 0.05)) as hook:
        seed(db_url, tmp_path, hook.url)
        done = threading.Event()

        def produce() -> None:
            for batch in range(BATCHES):
                load(db_url, tmp_path / f"batch-{batch}.jsonl", orders(1 + batch * BATCH_ORDERS, BATCH_ORDERS))
            done.set()

        producer = threading.Thread(target=produce)
        producer.start()
        rng = random.Random(11)
        try:
            # At least KILLS kills, and on until deliveries were under way when one came (a loaded machine
            # may start the gateway slowly), within a bound.
            for kill in range(3 * KILLS):
                if kill >= KILLS and hook.calls:
                    break
                with killable(db_url) as proc:
                    await asyncio.sleep(rng.uniform(1.0, 2.0))
                    proc.send_signal(signal.SIGKILL)
        finally:
            producer.join(timeout=120)
        assert done.is_set()
        killed_calls = len(hook.calls)
        with server_process(db_url, *FLAGS):
            expected = await asyncio.to_thread(event_ids, db_url)
            assert len(expected) == BATCHES * BATCH_ORDERS
            await wait_for_all(hook, expected, timeout=60)
        assert 0 < killed_calls, "no delivery happened before the kills: the test proved nothing"
        print(f"{len(expected)} events, {len(hook.calls)} calls, {check_calls(hook, expected)} repeated after kills")
