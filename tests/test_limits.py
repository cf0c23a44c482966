"""SPEC 3, 6 and 10: every body, string, query value and token form from the network is bounded, and a request
beyond a bound is the client's 400, never a 500."""
from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from conftest import customer_record, order_record, partner_headers, reseller_record

from schemas.bodies import MAX_DEPTH

ORDERS = "/v3/customers/C1/orders"
_keys = itertools.count(1)


@pytest.fixture
async def partner(make_partner, load):
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"),
                order_record("5000000001", "C1", "2026-01-01T00:00:00Z")])
    return credential


def order(order_type: str = "PREVIEW", **overrides: Any) -> dict[str, Any]:
    body = {"orderType": order_type, "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}
    body.update(overrides)
    return body


def nested(depth: int) -> bytes:
    """A body nested `depth` levels deep, the body object being the first."""
    return orjson.dumps(order())[:-1] + b',"pricing":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


async def send(client, partner, raw: bytes, *, key: str | None = None, method: str = "POST",
               path: str = ORDERS, params: Any = None) -> tuple[int, dict[str, Any]]:
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    headers["X-Correlation-Id"] = key or f"limits-{next(_keys)}"
    response = await client.request(method, path, data=raw, headers=headers, params=params)
    return response.status, await response.json()


async def test_nesting_up_to_the_limit_is_read_deeper_is_1117_at_any_depth(client, partner):
    status, body = await send(client, partner, nested(MAX_DEPTH))
    assert status == 200, body  # pricing is an accepted echo
    for depth in (MAX_DEPTH + 1, 253, 600, 1023, 1025, 100_000):
        status, body = await send(client, partner, nested(depth))
        assert (status, body["code"]) == (400, "1117"), (depth, body)
        assert f"{MAX_DEPTH} levels" in body["message"]


async def test_a_member_sent_twice_is_1117_naming_it_and_places_nothing(client, partner):
    raw = b'{"orderType":"PREVIEW","orderType":"NEW","currencyCode":"USD",' \
          b'"lineItems":[{"extLineItemNumber":1,"offerId":"OFFER-A","quantity":1}]}'
    status, body = await send(client, partner, raw)
    assert (status, body["code"], body["invalidFields"]) == (400, "1117", ["orderType"])
    line = b'{"extLineItemNumber":1,"offerId":"A","offerId":"B","quantity":1}'
    raw = b'{"orderType":"NEW","currencyCode":"USD","lineItems":[' + line + b']}'
    status, body = await send(client, partner, raw)
    assert (status, body["code"], body["invalidFields"]) == (400, "1117", ["offerId"])
    # Colons and brackets in strings are text: no member is repeated here, one is unknown.
    status, body = await send(client, partner, orjson.dumps({'a:"{': 'x:"[:', **order()}))
    assert (status, body["code"], body["invalidFields"]) == (400, "1121", ['a:"{'])
    headers = await partner_headers(client, partner)
    history = await (await client.get(ORDERS, headers=headers)).json()
    assert history["totalCount"] == 1  # only the imported order


async def test_refusals_of_the_body_layer_are_not_stored_for_replay(client, partner):
    status, _ = await send(client, partner, nested(MAX_DEPTH + 1), key="same-key")
    assert status == 400
    status, body = await send(client, partner, orjson.dumps(order()), key="same-key")
    assert status == 200, body  # the key was not taken by the refused body
    twice = b'{"orderType":"NEW","orderType":"PREVIEW"}'
    for _ in range(2):
        status, body = await send(client, partner, twice, key="other-key")
        assert (status, body["code"]) == (400, "1117")
