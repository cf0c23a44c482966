"""A database that cannot serve now (locked past the busy timeout, a full disk) answers 503 with
Retry-After in the error shape, stores nothing, and the same X-Correlation-Id succeeds once it can."""
from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    TEST_SIGNING_KEY,
    customer_record,
    partner_headers,
    process_headers,
    reseller_record,
    seed_with_cli,
    sqlite_only,
)
from gateway.app import create_app
from gateway.settings import Settings

ORDERS = "/v3/customers/C1/orders"
NEW = {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 1}]}
BUSY_TIMEOUT = 0.3  # seconds: the test's locks outlast it


async def gateway(aiohttp_client: Any, db_url: str) -> Any:
    settings = Settings(database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                        db_busy_timeout_seconds=BUSY_TIMEOUT)
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
        assert (await client.get("/readyz")).status == 503
        listed = await client.get(ORDERS, headers=headers)  # readers are not blocked by a writer
        assert listed.status == 200 and (await listed.json())["totalCount"] == 0
    assert (await client.get("/readyz")).status == 200
    placed = await client.post(ORDERS, json=NEW, headers=headers)
    assert placed.status == 201 and "Idempotent-Replayed" not in placed.headers
    again = await client.post(ORDERS, json=NEW, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (await (await client.get(ORDERS, headers=headers)).json())["totalCount"] == 1


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
