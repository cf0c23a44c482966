"""Crash safety: the server is SIGKILLed again and again while a client places orders with retries.

Every 201 the client saw has its order, no order exists twice, and every key ends with exactly one order.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import subprocess
import sys
import time

import aiohttp
from conftest import ROOT, free_port, process_headers, seed_with_cli

KEYS = 120
KILLS = 5
CONCURRENCY = 6
DEADLINE_SECONDS = 120


def start(db_url: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


async def ready(http: aiohttp.ClientSession) -> None:
    """Until /readyz answers 200 (the database answers and takes a write), as an orchestrator would wait: on a
    loaded machine, a token request to a process just restarted after a SIGKILL was once answered without a
    token."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get("/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError("the restarted gateway never became ready")


def body_for(key: str) -> dict:
    return {"orderType": "NEW", "currencyCode": "USD", "externalReferenceId": key,
            "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}


async def test_sigkill_loses_no_acknowledged_order_and_duplicates_none(db_url, tmp_path):
    partner = seed_with_cli(db_url, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pending = [f"crash-{n}" for n in range(KEYS)]
    acknowledged: dict[str, str] = {}  # key -> orderId of every 201 seen
    attempts: dict[str, int] = {}
    rng = random.Random(7)
    started = time.monotonic()

    round_acks = 0
    kill_now = asyncio.Event()
    kill_after = 0

    async def worker(http: aiohttp.ClientSession, headers: dict[str, str], queue: list[str]) -> None:
        nonlocal round_acks
        while queue:
            key = queue.pop()
            attempts[key] = attempts.get(key, 0) + 1
            try:
                async with http.post("/v3/customers/C1/orders", json=body_for(key),
                                     headers={**headers, "X-Correlation-Id": key}) as response:
                    if response.status == 201:
                        order_id = (await response.json())["orderId"]
                        assert acknowledged.setdefault(key, order_id) == order_id
                        round_acks += 1
                        if round_acks >= kill_after:
                            kill_now.set()
                        continue
                    assert response.status == 409, await response.text()
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                pass
            pending.append(key)  # no answer, or "still executing": retry after the restart
            return

    for round_no in range(KILLS + 1):
        assert time.monotonic() - started < DEADLINE_SECONDS
        proc = start(db_url, port)
        try:
            async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
                await ready(http)
                headers = await process_headers(http, partner, "unused")
                queue, pending[:] = list(pending), []
                rng.shuffle(queue)
                round_acks, kill_after = 0, rng.randint(3, 12)
                kill_now.clear()
                work = asyncio.gather(*(worker(http, headers, queue) for _ in range(CONCURRENCY)))
                if round_no < KILLS:
                    # Killed mid-stream: a few orders in, with others in flight.
                    await asyncio.wait_for(kill_now.wait(), timeout=30)
                    proc.send_signal(signal.SIGKILL)
                await asyncio.wait_for(work, timeout=60)
                pending.extend(queue)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        if not pending and round_no >= KILLS:
            break

    # Whatever is still pending is retried against a healthy server until answered.
    proc = start(db_url, port)
    try:
        async with aiohttp.ClientSession(base) as http:
            await ready(http)
            headers = await process_headers(http, partner, "unused")
            while pending:
                assert time.monotonic() - started < DEADLINE_SECONDS
                queue, pending[:] = list(pending), []
                await asyncio.gather(*(worker(http, headers, queue) for _ in range(CONCURRENCY)))
            orders = []
            for offset in range(0, KEYS + 100, 100):
                async with http.get("/v3/customers/C1/orders", params={"limit": "100", "offset": str(offset)},
                                    headers={**headers, "X-Correlation-Id": "read"}) as response:
                    page = await response.json()
                orders += page["items"]
                if offset + 100 >= page["totalCount"]:
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    assert set(acknowledged) == {f"crash-{n}" for n in range(KEYS)}
    by_key: dict[str, list[str]] = {}
    for order in orders:
        by_key.setdefault(order["externalReferenceId"], []).append(order["orderId"])
    assert all(len(ids) == 1 for ids in by_key.values()), "an order exists twice"
    assert {key: ids[0] for key, ids in by_key.items()} == acknowledged
    assert any(count > 1 for count in attempts.values()), "no request was ever cut off: the test proved nothing"
