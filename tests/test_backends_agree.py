"""The same imported data answers the same history, byte for byte, on SQLite and on PostgreSQL."""
from __future__ import annotations

from io import BytesIO
from typing import Any

import orjson
import pytest
from conftest import UNLIMITED, customer_record, order_record, partner_headers, reseller_record

from gateway.app import create_app
from gateway.importer import import_file
from gateway.partners import create_partner
from gateway.settings import Settings
from gateway.storage import open_storage

QUERIES = [
    "", "?limit=3", "?limit=3&offset=3", "?offset=9", "?status=1000", "?status=1000&status=1004",
    "?order-type=RETURN", "?order-type=NEW&status=1002", "?offer-id=OFFER-B", "?subscription-id=SUB-3",
    "?reseller-id=R2", "?reference-order-id=7000000001", "?external-reference-id=EXT-4",
    "?start-date=2024-03-01&end-date=2024-06-30T23:59:59Z", "?start-date=2024-05-01T00:00:00.5Z",
    "?limit=500&fetch-price=true", "?limit=0", "?offset=99",
]


def dataset() -> list[dict[str, Any]]:
    records = [reseller_record("R1", "P1"), reseller_record("R2", "P1"), customer_record("C1", "R1")]
    for n in range(12):
        records.append(order_record(
            f"70000000{n:02d}", "C1", f"2024-{1 + n % 12:02d}-{1 + n:02d}T10:00:00Z",
            status=("1000", "1002", "1004")[n % 3], order_type=("NEW", "RENEWAL", "RETURN")[n % 3],
            offers=["OFFER-A", "OFFER-B"][: 1 + n % 2], subscriptions=[f"SUB-{n}"],
            reseller_id="R2" if n % 4 == 0 else None, external_reference_id=f"EXT-{n}",
            reference_order_id="7000000001" if n % 3 == 2 else "",
        ))
    return records


async def test_sqlite_and_postgres_cached_or_not_answer_alike(aiohttp_client, tmp_path, db_url):
    if db_url.startswith("sqlite://"):
        pytest.skip("runs once, from the PostgreSQL parameter, against both backends")
    data = b"".join(orjson.dumps(record) + b"\n" for record in dataset())
    answers: list[list[tuple[int, bytes]]] = []
    for url in (f"sqlite:///{tmp_path}/agree.db", db_url):
        async with open_storage(url) as storage:
            partner = await create_partner(storage, "P", "P1")
            await import_file(storage, BytesIO(data))
        # From the history cache, and from SQL paging (the cache off): the same bytes.
        for cache_bytes in (Settings.history_cache_bytes, 0):
            settings = Settings(**UNLIMITED, database_url=url, credential_cache_seconds=0, history_cache_bytes=cache_bytes)
            client = await aiohttp_client(create_app(settings))
            headers = await partner_headers(client, partner)
            got = []
            for query in QUERIES:
                response = await client.get(f"/v3/customers/C1/orders{query}", headers=headers)
                got.append((response.status, await response.read()))
            answers.append(got)
    assert answers[0] == answers[1] == answers[2] == answers[3]
    assert {status for status, _ in answers[0]} == {200, 400}
