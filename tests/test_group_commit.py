"""Creations asked at once share transactions (group commit) and still each get their own answer: a refusal,
a key another process holds and a unit that fails roll back alone, and every order is stored exactly once."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import customer_record, partner_headers, reseller_record

from gateway.idempotency import Answer, Claim
from gateway.storage import open_storage

ORDERS = "/v3/customers/C1/orders"
NEW = {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 1}]}
REFUSED = {**NEW, "lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 0}]}  # 2120, stored
CREATED = 30


async def _customer_versions(db_url: str) -> int:
    """How many commits moved C1's version (PostgreSQL: each transaction moves it once, at its COMMIT)."""
    import asyncpg

    connection = await asyncpg.connect(db_url)
    try:
        return int(await connection.fetchval("SELECT count(DISTINCT version) FROM order_changes WHERE customer_id = 'C1'"))
    finally:
        await connection.close()


async def _hold_key(db_url: str, partner_id: str, key: str) -> Any:
    """Another process's transaction holding the claim on a correlation id (PostgreSQL)."""
    import asyncpg
    from gateway.storage.postgres_db import lock_key

    connection = await asyncpg.connect(db_url)
    schema = await connection.fetchval("SELECT current_schema()")
    await connection.execute("BEGIN")
    await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema, f"answer\x1f{partner_id}\x1f{key}"))
    return connection


async def test_creations_asked_at_once_each_get_their_own_answer(client: Any, make_partner: Any, load: Any,
                                                                 db_url: str) -> None:
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    headers = await partner_headers(client, partner)
    postgres = db_url.startswith("postgresql://")
    holder = await _hold_key(db_url, "P1", "held") if postgres else None

    async def post(key: str, body: dict[str, Any], path: str = ORDERS) -> tuple[int, dict[str, Any]]:
        response = await client.post(path, json=body, headers={**headers, "X-Correlation-Id": key})
        return response.status, await response.json()

    asked = [post(f"new-{n}", NEW) for n in range(CREATED)]
    asked += [post(f"unknown-{n}", NEW, "/v3/customers/C404/orders") for n in range(5)]
    asked += [post(f"refused-{n}", REFUSED) for n in range(5)]
    asked += [post("held", NEW)] if postgres else []
    try:
        answers = await asyncio.wait_for(asyncio.gather(*asked), timeout=60)
    finally:
        if holder is not None:
            await holder.close()
    created, unknown, refused = answers[:CREATED], answers[CREATED:CREATED + 5], answers[CREATED + 5:CREATED + 10]
    assert {status for status, _ in created} == {201}
    assert len({body["orderId"] for _, body in created}) == CREATED
    assert {(status, body["code"]) for status, body in unknown} == {(404, "1116")}
    assert {(status, body["code"]) for status, body in refused} == {(400, "2120")}
    if postgres:
        assert (answers[-1][0], answers[-1][1]["code"]) == (409, "4122")
        # Fewer commits than creations: the creations shared transactions.
        assert await _customer_versions(db_url) < CREATED
    history = await (await client.get(f"{ORDERS}?limit=100", headers=headers)).json()
    assert history["totalCount"] == CREATED
    feed = await (await client.get("/v3/order-events?limit=100", headers=headers)).json()
    assert sorted(event["orderId"] for event in feed["items"]) == sorted(body["orderId"] for _, body in created)
    # What each answer left behind: the refusals are stored, the state-dependent 1116 and the held key not.
    again = await client.post(ORDERS, json=REFUSED, headers={**headers, "X-Correlation-Id": "refused-0"})
    assert again.status == 400 and again.headers["Idempotent-Replayed"] == "true"
    await load([customer_record("C404", "R1")])
    assert (await post("unknown-0", NEW, "/v3/customers/C404/orders"))[0] == 201
    assert (await post("held", NEW))[0] == 201


async def test_a_unit_that_fails_in_a_group_rolls_back_alone(db_url: str) -> None:
    if not db_url.startswith("postgresql://"):
        pytest.skip("SQLite's group commit has its own tests; this one holds PostgreSQL's group transactions open")
    release = asyncio.Event()

    def claim(key: str) -> Claim:
        return Claim("P1", key, "fingerprint", f"request-{key}", now=1_800_000_000, not_before=0)

    def storing(key: str, fail: bool = False) -> Any:
        async def unit(tx: Any) -> str:
            if key.startswith("blocker"):
                await release.wait()  # holds its group's transaction open while the others queue
            await tx.store_answer(claim(key), Answer(201, json.dumps({"key": key}).encode(), "application/json"), 1)
            if fail:
                raise RuntimeError(f"{key} failed after its write")
            return key
        return unit

    async with open_storage(db_url) as storage:
        blockers = []
        for n in range(2):  # each in a group transaction of its own: both of the process's are open, and wait
            blockers.append(asyncio.ensure_future(storage.write(storing(f"blocker-{n}"), grouped=True)))
            await asyncio.sleep(0.1)
        queued = [asyncio.ensure_future(storage.write(storing(key, fail=key == "fails"), grouped=True))
                  for key in ("first", "fails", "last")]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(*blockers, *queued, return_exceptions=True)
        assert results[:2] == ["blocker-0", "blocker-1"]
        assert results[2] == "first" and results[4] == "last"
        assert isinstance(results[3], RuntimeError)
        stored = {key: await storage.stored_answer("P1", key, 0) for key in ("first", "fails", "last")}
    assert stored["first"] is not None and stored["last"] is not None
    assert stored["fails"] is None


async def test_a_unit_queued_past_its_busy_timeout_is_given_up_and_never_runs(db_url: str) -> None:
    """While the process's group transactions are held up, a unit that waits for one past its busy timeout
    gets StorageUnavailable (503), as a lone write waiting for its connection would, and is never run."""
    if not db_url.startswith("postgresql://"):
        pytest.skip("holds PostgreSQL's group transactions open")
    from gateway.storage import StorageUnavailable

    release = asyncio.Event()

    async def blocker(tx: Any) -> None:
        await release.wait()

    async def late(tx: Any) -> None:
        await tx.store_answer(Claim("P1", "late", "f", "r", now=1, not_before=0), Answer(201, b"{}", "x"), 1)

    async with open_storage(db_url, busy_timeout_seconds=0.3) as storage:
        blockers = []
        for _ in range(2):  # each in a group transaction of its own: both of the process's are held up
            blockers.append(asyncio.ensure_future(storage.write(blocker, grouped=True)))
            await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(StorageUnavailable):
                await asyncio.wait_for(storage.write(late, grouped=True), 5)
            assert asyncio.get_running_loop().time() - started < 1.0
        finally:
            release.set()
            await asyncio.gather(*blockers)
        assert await storage.stored_answer("P1", "late", 0) is None


async def test_a_unit_queued_as_the_last_groups_end_is_still_run() -> None:
    """Both group runners ending their loops in one turn of the event loop were still counted as running
    until their tasks' done callbacks ran: a unit queued in between started no runner, and waited for the
    next grouped write of the process, for ever where none came (found by a review)."""
    from gateway.storage.pg_groups import GroupCommits

    release = asyncio.Event()

    async def write_group(unit: Any, seconds: float) -> list[Any]:
        await release.wait()  # both groups end in the turn the event is set
        return [(None, "done")]

    groups = GroupCommits(write_group)
    first = asyncio.ensure_future(groups.write(lambda db: None, 5))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(groups.write(lambda db: None, 5))
    await asyncio.sleep(0.01)

    async def queued_in_that_turn() -> Any:
        await release.wait()  # woken in the same turn, after both runners found the queue empty
        return await groups.write(lambda db: None, 5)

    late = asyncio.ensure_future(queued_in_that_turn())
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(asyncio.gather(first, second, late), 3) == ["done"] * 3


async def test_a_unit_that_would_wait_for_a_lock_cannot_join_a_group(db_url: str) -> None:
    """Two groups each holding one order's lock while waiting for the other's deadlock, and every unit of
    both fails: a grouped unit that asks for a lock it would wait for is a programming error (a PATCH was
    grouped by mistake: found by a review)."""
    if not db_url.startswith("postgresql://"):
        pytest.skip("SQLite's writers are one at a time: no lock to wait for")
    async with open_storage(db_url) as storage:
        with pytest.raises(TypeError):
            await storage.write(lambda tx: tx.visible_order("C1", "O1", "P1"), grouped=True)
        assert await storage.write(lambda tx: tx.visible_order("C1", "O1", "P1")) is None
