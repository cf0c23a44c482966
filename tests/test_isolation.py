"""Acceptance tests of partner isolation: another partner's customers and orders
are answered exactly like ones that do not exist (404, never 403, never data)."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import customer_record, order_record, partner_headers, reseller_record

# Every test runs twice: pages from the history cache, and from SQL with the cache off.
pytestmark = pytest.mark.reads_history

ERROR_KEYS = {"code", "message", "additionalDetails", "invalidFields"}

# Everything dated well in the past, customers without cotermDate: the default window holds every order.
CUSTOMERS = {
    "P1": {"C1A": "R1A", "C1B": "R1B"},
    "P2": {"C2A": "R2A", "C2B": "R2B"},
}
RESELLERS = {"R1A": "P1", "R1B": "P1", "R2A": "P2", "R2B": "P2"}
# order id -> (customer, reseller it was placed through, creationDate)
ORDERS = {
    "1100000001": ("C1A", "R1A", "2024-01-01T00:00:00Z"),
    "1100000002": ("C1A", "R1B", "2024-01-02T00:00:00Z"),  # through another reseller of the same partner
    "1100000003": ("C1B", "R1B", "2024-01-03T00:00:00Z"),
    "2200000001": ("C2A", "R2A", "2024-01-04T00:00:00Z"),
    "2200000002": ("C2B", "R2B", "2024-01-05T00:00:00Z"),
    "2200000003": ("C2B", "R2A", "2024-01-06T00:00:00Z"),
}
# A customer of P1 with an order placed through P2's reseller: visible to neither partner as P2's data,
# and invisible to P1.
CROSS_ORDER = "3300000001"
CROSS = (CROSS_ORDER, "C1A", "R2A", "2024-01-07T00:00:00Z")

OWN_ORDERS = {
    "C1A": ["1100000002", "1100000001"],
    "C1B": ["1100000003"],
    "C2A": ["2200000001"],
    "C2B": ["2200000003", "2200000002"],
}
OTHER = {"P1": "P2", "P2": "P1"}


def owner(customer_id: str) -> str:
    return next(partner for partner, customers in CUSTOMERS.items() if customer_id in customers)


def placed_by(order_id: str) -> str:
    return RESELLERS[CROSS[2]] if order_id == CROSS_ORDER else RESELLERS[ORDERS[order_id][1]]


def customer_of(order_id: str) -> str:
    return CROSS[1] if order_id == CROSS_ORDER else ORDERS[order_id][0]


ALL_ORDERS = sorted([*ORDERS, CROSS_ORDER])
FOREIGN_CUSTOMERS = [(viewer, c) for viewer in ("P1", "P2") for c in sorted(OWN_ORDERS) if owner(c) != viewer]
FOREIGN_CUSTOMER_ORDERS = [(viewer, o) for viewer in ("P1", "P2") for o in ALL_ORDERS
                           if owner(customer_of(o)) != viewer]
FOREIGN_ORDERS = [(viewer, o) for viewer in ("P1", "P2") for o in ALL_ORDERS if placed_by(o) != viewer]


def records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [reseller_record(r, p) for r, p in RESELLERS.items()]
    for customers in CUSTOMERS.values():
        out += [customer_record(c, r) for c, r in customers.items()]
    for order_id, (customer_id, reseller_id, created) in ORDERS.items():
        out.append(order_record(order_id, customer_id, created, reseller_id=reseller_id))
    order_id, customer_id, reseller_id, created = CROSS
    out.append(order_record(order_id, customer_id, created, reseller_id=reseller_id))
    return out


@pytest.fixture
async def partners(make_partner, load):
    creds = {"P1": await make_partner("P1", "Partner One"), "P2": await make_partner("P2", "Partner Two")}
    await load(records())
    return creds


async def get(client, credential, path: str, pairs=()):
    url = f"{path}?{urlencode(list(pairs))}" if pairs else path
    response = await client.get(url, headers=await partner_headers(client, credential))
    return response, await response.json()


def assert_not_found(response, body, code: str) -> None:
    assert response.status == 404, body
    assert set(body) == ERROR_KEYS
    assert body["code"] == code
    assert isinstance(body["code"], str)


def assert_no_data(body: dict[str, Any]) -> None:
    text = repr(body)
    for order_id in [*ORDERS, CROSS_ORDER]:
        assert order_id not in text
    for reseller_id in RESELLERS:
        assert reseller_id not in text


# --- each partner sees its own data (so the denials below are meaningful) ----------------------------

@pytest.mark.parametrize("customer_id", sorted(OWN_ORDERS))
async def test_partner_sees_own_customers_orders(client, partners, customer_id):
    credential = partners[owner(customer_id)]
    response, body = await get(client, credential, f"/v3/customers/{customer_id}/orders")
    assert response.status == 200, body
    assert [item["orderId"] for item in body["items"]] == OWN_ORDERS[customer_id]
    assert body["totalCount"] == len(OWN_ORDERS[customer_id])
    for order_id in OWN_ORDERS[customer_id]:
        response, body = await get(client, credential, f"/v3/customers/{customer_id}/orders/{order_id}")
        assert response.status == 200, body
        assert body["orderId"] == order_id
        assert body["customerId"] == customer_id


# --- the matrix: the other partner gets 404, never 403, never data ------------------------------------

@pytest.mark.parametrize(("viewer", "customer_id"), FOREIGN_CUSTOMERS)
async def test_other_partners_customer_history_is_1116(client, partners, viewer, customer_id):
    response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders")
    assert_not_found(response, body, "1116")
    assert_no_data(body)
    # answered exactly like a customer that does not exist
    missing_response, missing = await get(client, partners[viewer], "/v3/customers/NO-SUCH-CUSTOMER/orders")
    assert missing_response.status == response.status
    assert missing == body
    # filters and paging change nothing
    response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders",
                               [("status", "1000"), ("limit", "5"), ("offset", "0")])
    assert_not_found(response, body, "1116")
    assert_no_data(body)


@pytest.mark.parametrize(("viewer", "order_id"), FOREIGN_CUSTOMER_ORDERS)
async def test_other_partners_order_details_under_its_customer_is_1116(client, partners, viewer, order_id):
    customer_id = customer_of(order_id)
    response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders/{order_id}")
    assert_not_found(response, body, "1116")
    assert_no_data(body)
    missing_response, missing = await get(client, partners[viewer], "/v3/customers/NO-SUCH-CUSTOMER/orders/1")
    assert missing_response.status == response.status
    assert missing == body


@pytest.mark.parametrize(("viewer", "order_id"), FOREIGN_ORDERS)
async def test_other_partners_order_under_own_customer_is_2115(client, partners, viewer, order_id):
    for customer_id in CUSTOMERS[viewer]:
        response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders/{order_id}")
        assert_not_found(response, body, "2115")
        assert_no_data(body)
        missing_response, missing = await get(
            client, partners[viewer], f"/v3/customers/{customer_id}/orders/9999999999"
        )
        assert missing_response.status == response.status
        assert missing == body


# --- an order placed through the other partner's reseller -------------------------------------------

async def test_order_through_other_partners_reseller_is_invisible_to_customers_partner(client, partners):
    p1 = partners["P1"]
    response, body = await get(client, p1, "/v3/customers/C1A/orders")
    assert response.status == 200, body
    assert CROSS_ORDER not in [item["orderId"] for item in body["items"]]
    assert body["totalCount"] == 2
    # no filter brings it out
    for pairs in ([("reseller-id", "R2A")], [("status", "1000")], [("offer-id", "OFFER-A")],
                  [("start-date", "2024-01-07"), ("end-date", "2024-01-07T00:00:00Z")]):
        response, body = await get(client, p1, "/v3/customers/C1A/orders", pairs)
        assert response.status == 200, body
        assert CROSS_ORDER not in [item["orderId"] for item in body["items"]], pairs
    response, body = await get(client, p1, f"/v3/customers/C1A/orders/{CROSS_ORDER}")
    assert_not_found(response, body, "2115")
    assert_no_data(body)


async def test_order_through_own_reseller_for_other_partners_customer_is_invisible(client, partners):
    p2 = partners["P2"]
    response, body = await get(client, p2, "/v3/customers/C1A/orders")
    assert_not_found(response, body, "1116")
    assert_no_data(body)
    response, body = await get(client, p2, f"/v3/customers/C1A/orders/{CROSS_ORDER}")
    assert_not_found(response, body, "1116")
    assert_no_data(body)
    # nor does it surface under one of P2's own customers
    response, body = await get(client, p2, f"/v3/customers/C2A/orders/{CROSS_ORDER}")
    assert_not_found(response, body, "2115")


# --- reseller-id of the other partner ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("viewer", "customer_id", "reseller_id"),
    [("P1", "C1A", "R2A"), ("P1", "C1A", "R2B"), ("P1", "C1B", "R2A"),
     ("P2", "C2A", "R1A"), ("P2", "C2B", "R1B"), ("P2", "C2B", "R1A")],
)
async def test_other_partners_reseller_id_matches_nothing(client, partners, viewer, customer_id, reseller_id):
    response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders",
                               [("reseller-id", reseller_id)])
    assert response.status == 200, body
    assert body["totalCount"] == 0
    assert body["count"] == 0
    assert body["items"] == []
    # while an own reseller of the same customer matches
    own = CUSTOMERS[viewer][customer_id]
    response, body = await get(client, partners[viewer], f"/v3/customers/{customer_id}/orders",
                               [("reseller-id", own)])
    assert response.status == 200, body
    assert body["totalCount"] >= 1
    assert {ORDERS[item["orderId"]][1] for item in body["items"]} == {own}


async def test_requests_at_once_each_get_their_partners_answer(client, partners):
    """Both partners ask for every customer at once, and for ones nobody has (one with a NUL): each answer is
    what the partner gets when it asks alone. On PostgreSQL such requests share one read of their customers
    (gateway.storage.key_batches), which must keep each partner's scope, and a key that matches nothing
    (a NUL cannot be stored) must not empty the others' answers."""
    customers = [*sorted(OWN_ORDERS), "NO-SUCH-CUSTOMER", "C1A%00", "%00"]
    asked = [(viewer, customer_id) for viewer in ("P1", "P2") for customer_id in customers] * 3
    headers = {viewer: await partner_headers(client, partners[viewer]) for viewer in ("P1", "P2")}

    async def ask(viewer: str, customer_id: str) -> tuple[int, Any]:
        response = await client.get(f"/v3/customers/{customer_id}/orders", headers=headers[viewer])
        return response.status, await response.json()

    answers = await asyncio.gather(*(ask(viewer, customer_id) for viewer, customer_id in asked))
    for (viewer, customer_id), (status, body) in zip(asked, answers):
        if customer_id in OWN_ORDERS and owner(customer_id) == viewer:
            assert status == 200, (viewer, customer_id, body)
            assert [item["orderId"] for item in body["items"]] == OWN_ORDERS[customer_id]
        else:
            assert (status, body["code"]) == (404, "1116"), (viewer, customer_id, body)


# --- tokens are bound to the API key they were issued to --------------------------------------------

@pytest.mark.parametrize(
    "path", ["/v3/customers/C1A/orders", "/v3/customers/C2A/orders", "/v3/customers/C1A/orders/1100000001",
             "/v3/customers/C2A/orders/2200000001"],
)
@pytest.mark.parametrize(("token_of", "key_of"), [("P1", "P2"), ("P2", "P1")])
async def test_token_of_one_partner_with_other_partners_api_key_is_4116(client, partners, path, token_of, key_of):
    headers = await partner_headers(client, partners[token_of])
    headers["X-Api-Key"] = partners[key_of].api_key
    response = await client.get(path, headers=headers)
    body = await response.json()
    assert response.status == 401, body
    assert set(body) == ERROR_KEYS
    assert body["code"] == "4116"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_no_data(body)
    # the same token with its own key works
    headers["X-Api-Key"] = partners[token_of].api_key
    response = await client.get(path, headers=headers)
    assert response.status in (200, 404)
    assert response.status == (200 if owner(path.split("/")[3]) == token_of else 404)
