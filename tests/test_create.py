"""Placing, previewing and updating orders, with the partner API's coded validation."""
from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import cli, customer_record, order_record, partner_headers, reseller_record

from schemas.common import ErrorSchema
from schemas.orders import CreatedOrderSchema, OrderSchema

ORDERS = "/v3/customers/C1/orders"
_keys = itertools.count(1)


def zulu(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


NOW = datetime.now(timezone.utc)


@pytest.fixture
async def partner(make_partner, load):
    credential = await make_partner("P1")
    await make_partner("P2")
    await load([
        reseller_record("R1", "P1"), reseller_record("R2", "P2"),
        customer_record("C1", "R1"), customer_record("C2", "R2"),
        order_record("5000000001", "C1", zulu(NOW - timedelta(days=2)), offers=["OFFER-A", "OFFER-B"],
                     subscriptions=["SUB-1", "SUB-2"]),
        order_record("5000000002", "C1", zulu(NOW - timedelta(days=20)), offers=["OFFER-A"]),
        order_record("5000000003", "C1", zulu(NOW - timedelta(days=1)), order_type="TRANSFER"),
    ])
    return credential


async def send(client, partner, body, *, path=ORDERS, method="POST", key=None, params=None):
    headers = await partner_headers(client, partner)
    headers["X-Correlation-Id"] = key or f"key-{next(_keys)}"
    response = await client.request(method, path, json=body, headers=headers, params=params)
    return response, await response.json()


def new_order(**overrides):
    body = {
        "orderType": "NEW",
        "externalReferenceId": "PO-1",
        "currencyCode": "USD",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 2}],
    }
    body.update(overrides)
    return body


def assert_error(response, body, status, code, fields=None):
    assert response.status == status, body
    assert body["code"] == code, body
    assert ErrorSchema().validate(body) == {}
    if fields is not None:
        assert sorted(body["invalidFields"]) == sorted(fields), body


async def history_ids(client, partner):
    response = await client.get(ORDERS, headers=await partner_headers(client, partner))
    return [item["orderId"] for item in (await response.json())["items"]]


# -- success -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order_type", ["NEW", "RENEWAL"])
async def test_new_and_renewal_are_placed_with_location(client, partner, order_type):
    body = new_order(orderType=order_type)
    if order_type == "RENEWAL":
        body["lineItems"][0]["subscriptionId"] = "SUB-9"
    response, order = await send(client, partner, body)
    assert response.status == 201, order
    assert CreatedOrderSchema().validate(order) == {}
    assert order["status"] == "1002" and order["source"] == "API" and order["orderType"] == order_type
    assert len(order["orderId"]) == 10 and order["orderId"].isdigit()
    assert order["customerId"] == "C1" and order["currencyCode"] == "USD"
    created = datetime.strptime(order["creationDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(created.timestamp() - time.time()) < 10
    assert response.headers["Location"] == f"/v3/customers/C1/orders/{order['orderId']}"
    assert order["links"]["self"]["uri"] == response.headers["Location"]
    details = await client.get(response.headers["Location"], headers=await partner_headers(client, partner))
    assert await details.json() == order
    assert order["orderId"] in await history_ids(client, partner)


async def test_preview_answers_200_and_stores_nothing(client, partner):
    before = await history_ids(client, partner)
    response, order = await send(client, partner, new_order(orderType="PREVIEW"))
    assert response.status == 200, order
    assert order["orderId"] == "" and order["status"] == ""
    assert order["lineItems"][0]["offerId"] == "OFFER-A"
    assert CreatedOrderSchema().validate(order) == {}
    assert await history_ids(client, partner) == before


async def test_preview_for_an_unknown_or_foreign_customer_is_answered_the_same(client, partner):
    for customer in ("1234567890", "C2"):
        response, order = await send(client, partner, new_order(orderType="PREVIEW"),
                                     path=f"/v3/customers/{customer}/orders")
        assert response.status == 200, order
        assert order["customerId"] == customer


async def test_fields_clients_send_back_are_accepted(client, partner):
    body = new_order(
        customerId="C1", orderId="123", creationDate="2020-01-01T00:00:00Z", status="1000", source="API",
        links={"self": {"uri": "/x", "method": "GET", "headers": []}}, cancellingItems=[], flexDiscountCodes=[],
        discountCode="", pricingSummary=[{"totalLineItemPrice": 1}], flexDiscounts=[], pricing={},
        proratedDays=3, remainingQuantity=1,
    )
    body["lineItems"][0].update(status="1000", subscriptionId="SUB-IGNORED", promotions=[], flexDiscountCodes=None,
                                pricing={"partnerPrice": 1}, links={}, remainingQuantity=2, proratedDays=1,
                                discountCode="")
    response, order = await send(client, partner, body, params={"fetch-price": "true"})
    assert response.status == 201, order
    assert order["lineItems"][0]["subscriptionId"] == ""


async def test_patch_changes_the_external_reference_only(client, partner):
    response, order = await send(client, partner, {"externalReferenceId": "NEW-REF"}, method="PATCH",
                                 path=f"{ORDERS}/5000000001")
    assert response.status == 200, order
    assert OrderSchema().validate(order) == {}
    assert order["externalReferenceId"] == "NEW-REF"
    assert [line["offerId"] for line in order["lineItems"]] == ["OFFER-A", "OFFER-B"]
    details = await client.get(f"{ORDERS}/5000000001", headers=await partner_headers(client, partner))
    assert (await details.json())["externalReferenceId"] == "NEW-REF"


async def test_patch_and_set_status_keep_the_lines_in_their_placed_order(client, partner, db_url):
    response, placed = await send(client, partner, new_order(lineItems=lines((5, {}), (2, {}), (9, {}))))
    assert response.status == 201 and [line["extLineItemNumber"] for line in placed["lineItems"]] == [5, 2, 9]
    path = f"{ORDERS}/{placed['orderId']}"
    response, patched = await send(client, partner, {"externalReferenceId": "NEW-REF"}, method="PATCH", path=path)
    assert response.status == 200 and patched["lineItems"] == placed["lineItems"]
    cli(db_url, "orders", "set-status", placed["orderId"], "1000")
    read = await (await client.get(path, headers=await partner_headers(client, partner))).json()
    assert [line["extLineItemNumber"] for line in read["lineItems"]] == [5, 2, 9]


async def test_patches_racing_set_status_leave_its_status(client, partner, db_url):
    """A PATCH reads the order and writes it back: without the order's lock, on PostgreSQL it could write
    back the status it read, undoing a set-status that committed in between."""
    response, placed = await send(client, partner, new_order())
    path, stop = f"{ORDERS}/{placed['orderId']}", asyncio.Event()

    async def patching(worker: int) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            body = {"externalReferenceId": f"R{worker}-{n}"}
            assert (await send(client, partner, body, method="PATCH", path=path))[0].status == 200

    for status in ("1004", "1002", "1008"):
        stop.clear()
        patches = [asyncio.create_task(patching(worker)) for worker in range(4)]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(cli, db_url, "orders", "set-status", placed["orderId"], status)
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*patches)
        read = await (await client.get(path, headers=await partner_headers(client, partner))).json()
        assert read["status"] == status


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"{ORDERS}/nope", {"externalReferenceId": "X"}, 404, "2115"),
        ("/v3/customers/C2/orders/5000000001", {"externalReferenceId": "X"}, 404, "1116"),
        (f"{ORDERS}/5000000001", {"externalReferenceId": "X" * 36}, 400, "2126"),
        (f"{ORDERS}/5000000001", {"externalReferenceId": "X", "status": "1000"}, 400, "1121"),
        (f"{ORDERS}/5000000001", {}, 400, "1122"),
    ],
)
async def test_patch_errors(client, partner, path, body, status, code):
    response, answer = await send(client, partner, body, method="PATCH", path=path)
    assert_error(response, answer, status, code)


# -- validation codes ----------------------------------------------------------------------------------


def lines(*specs):
    return [dict({"extLineItemNumber": n, "offerId": "OFFER-A", "quantity": 1}, **extra) for n, extra in specs]


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        ({"currencyCode": "USD", "lineItems": lines((1, {}))}, "1122", ["orderType"]),
        ({"lineItems": lines((1, {}))}, "1122", ["orderType", "currencyCode"]),  # no currency anywhere either
        ({"orderType": "NEW", "currencyCode": "USD"}, "1122", ["lineItems"]),
        (new_order(orderType="BOGUS"), "1117", ["orderType"]),
        (new_order(lineItems=[]), "1117", ["lineItems"]),
        (new_order(lineItems=lines(*((n, {}) for n in range(1, 501)))), "2119", ["lineItems"]),
        (new_order(lineItems=lines((1, {}), (1, {}))), "2121", ["extLineItemNumber"]),
        (new_order(lineItems=lines((1000000, {}))), "2123", ["extLineItemNumber"]),
        (new_order(lineItems=lines((-1, {}))), "2123", ["extLineItemNumber"]),
        (new_order(externalReferenceId="X" * 36), "2126", ["externalReferenceId"]),
        (new_order(externalReferenceId="a<b"), "1117", ["externalReferenceId"]),
        (new_order(lineItems=lines((1, {"quantity": 0}))), "2120", ["quantity"]),
        (new_order(lineItems=lines((1, {"offerId": ""}))), "1117", ["offerId"]),
        (new_order(lineItems=[{"extLineItemNumber": 1, "quantity": 1}]), "1122", ["offerId"]),
        (new_order(referenceOrderId="5000000001"), "1117", ["referenceOrderId"]),
        (new_order(customerId="C2"), "1117", ["customerId"]),
        (new_order(cancellingItems=[{"extLineItemNumber": 1}]), "1117", ["cancellingItems"]),
        (new_order(currencyCode="usd"), "1117", ["currencyCode"]),
        (new_order(currencyCode="XXZ"), "1117", ["currencyCode"]),  # three capitals, but no ISO 4217 code
        (new_order(lineItems=lines((1, {"currencyCode": "ZZZ"})), currencyCode=None), "1117", ["currencyCode"]),
        (new_order(currencyCode=None), "1122", ["currencyCode"]),
        (new_order(lineItems=lines((1, {"currencyCode": "EUR"}))), "1117", ["currencyCode"]),
        (new_order(orderType="RENEWAL"), "1122", ["subscriptionId"]),
        (new_order(orderType="RETURN"), "1122", ["referenceOrderId"]),
        (new_order(orderType="RETURN", referenceOrderId=""), "1122", ["referenceOrderId"]),
        (new_order(colour="red"), "1121", ["colour"]),
        (new_order(lineItems=lines((1, {"colour": "red"}))), "1121", ["colour"]),
        (new_order(flexDiscountCodes=["SAVE10"]), "2141", ["flexDiscountCodes"]),
    ],
)
async def test_validation_codes_name_the_fields(client, partner, body, code, fields):
    body = {k: v for k, v in body.items() if v is not None}
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, code, fields)


@pytest.mark.parametrize("order_type", ["PREVIEW_RENEWAL", "SWITCH", "PREVIEW_SWITCH", "REVERT_SWITCH",
                                        "PREVIEW_REVERT_SWITCH"])
async def test_unsupported_partner_api_types_are_1117_even_without_lines(client, partner, order_type):
    response, answer = await send(client, partner, {"orderType": order_type})
    assert_error(response, answer, 400, "1117", ["orderType"])
    assert "not supported" in answer["message"]


async def test_an_invalid_order_currency_is_the_orders_problem_not_its_lines(client, partner):
    response, answer = await send(client, partner, new_order(currencyCode="usd"))
    assert_error(response, answer, 400, "1117", ["currencyCode"])
    assert answer["additionalDetails"] == ["currencyCode: currencyCode must be an ISO 4217 code"]


async def test_three_bad_lines_are_reported_together(client, partner):
    body = new_order(lineItems=lines((1, {"quantity": 0}), (2, {}), (3, {"quantity": -4}), (4, {"quantity": "x"})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "2120", ["quantity"])
    assert answer["additionalDetails"] == [
        "Line Item: 1, Reason: quantity must be an integer of at least 1",
        "Line Item: 3, Reason: quantity must be an integer of at least 1",
        "Line Item: 4, Reason: quantity must be an integer of at least 1",
    ]


async def test_every_problem_of_a_request_is_named_at_once(client, partner):
    body = new_order(externalReferenceId="X" * 40, colour="red",
                     lineItems=lines((1, {"quantity": 0}), (1, {}), (2000000, {})))
    response, answer = await send(client, partner, body, params={"foo": "1"})
    assert response.status == 400
    assert set(answer["invalidFields"]) == {
        "foo", "colour", "externalReferenceId", "quantity", "extLineItemNumber"}
    assert len(answer["additionalDetails"]) == 6


@pytest.mark.parametrize(("order_type", "code"), [(None, "1122"), ("NEWW", "1117"), (5, "1117")])
async def test_a_missing_or_invalid_order_type_is_reported_with_every_other_problem(client, partner, order_type,
                                                                                     code):
    """A client fixes its request once: the type it mistyped, and the rest. The rules of one type (a RENEWAL
    line's subscription) are left out, the others kept (duplicate line numbers)."""
    body = new_order(orderType=order_type, colour="red", lineItems=lines((1, {"quantity": 0}), (1, {})))
    response, answer = await send(client, partner, {k: v for k, v in body.items() if v is not None})
    assert_error(response, answer, 400, code, ["orderType", "colour", "quantity", "extLineItemNumber"])
    assert answer["additionalDetails"][1:] == [
        "colour: unknown field colour",
        "Line Item: 1, Reason: quantity must be an integer of at least 1",
        "Line Item: 1, Reason: extLineItemNumber 1 is used twice",
    ]


async def test_an_unsupported_order_type_answers_alone(client, partner):
    """A type of the partner API that the gateway does not place: the rest of the request is written for
    another kind of order, and is not checked as one."""
    body = new_order(orderType="SWITCH", colour="red", lineItems=lines((1, {"quantity": 0})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "1117", ["orderType"])


@pytest.mark.parametrize(("order_currency", "status", "fields"), [("USD", 201, None), (None, 400, ["currencyCode"])])
async def test_a_line_currency_of_null_is_not_sent(client, partner, order_currency, status, fields):
    """As at order level, and as a line's null deploymentId: the order's currency applies, and without one
    the line has none (1122)."""
    body = new_order(lineItems=lines((1, {"currencyCode": None})))
    if order_currency is None:
        del body["currencyCode"]
    response, answer = await send(client, partner, body)
    assert response.status == status, answer
    if fields:
        assert_error(response, answer, 400, "1122", fields)
    else:
        assert answer["currencyCode"] == answer["lineItems"][0]["currencyCode"] == "USD"


async def test_numbers_beyond_64_bits_are_out_of_range_not_other_types(client, partner):
    """orjson reads an integer beyond 64 bits as a double: 10**20 was "not an integer", and its Line Item
    detail gave the line's position."""
    body = new_order(lineItems=lines((10**20, {}), (2, {"quantity": 2**64})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "2123", ["extLineItemNumber", "quantity"])
    assert answer["additionalDetails"] == [
        f"Line Item: {10**20}, Reason: extLineItemNumber must be 0 to 999999",
        "Line Item: 2, Reason: quantity must be at most 2147483647",
    ]


async def test_a_nul_in_a_line_gets_its_line_item_detail(client, partner):
    body = new_order(lineItems=lines((1, {}), (7, {"offerId": "A\u0000", "deploymentId": "\u0000"})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "1117", ["offerId", "deploymentId"])
    assert answer["additionalDetails"] == [
        "Line Item: 7, Reason: offerId must not contain NUL characters",
        "Line Item: 7, Reason: deploymentId must not contain NUL characters",
    ]


@pytest.mark.parametrize("empty", [None, "", [], {}])
async def test_empty_cancelling_items_and_discount_codes_ask_for_nothing(client, partner, empty):
    body = new_order(cancellingItems=empty, flexDiscountCodes=empty, discountCode=empty,
                     lineItems=lines((1, {"flexDiscountCodes": empty, "discountCode": empty})))
    response, answer = await send(client, partner, body)
    assert response.status == 201, answer


async def test_discount_codes_on_a_line_are_2141_with_its_line_detail(client, partner):
    body = new_order(lineItems=lines((1, {}), (7, {"flexDiscountCodes": ["SUMMER"]}), (9, {"discountCode": "X"})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "2141", ["flexDiscountCodes", "discountCode"])
    assert [d.split(",")[0] for d in answer["additionalDetails"]] == ["Line Item: 7", "Line Item: 9"]


@pytest.mark.parametrize(("params", "ok"), [({"fetch-price": "true"}, True), ({"fetch-price": "false"}, True),
                                            ({"fetch-price": "yes"}, False), ({"limit": "5"}, False)])
async def test_post_takes_only_fetch_price(client, partner, params, ok):
    response, answer = await send(client, partner, new_order(), params=params)
    if ok:
        assert response.status == 201, answer
    else:
        assert_error(response, answer, 400, "1117", list(params))


@pytest.mark.parametrize(("query", "ok"), [("fetch-price=true&fetch-price=true", True),
                                           ("fetch-price=true&fetch-price=false", False)])
async def test_fetch_price_sent_twice_is_taken_only_with_one_value(client, partner, query, ok):
    response, answer = await send(client, partner, new_order(), path=f"{ORDERS}?{query}")
    if ok:
        assert response.status == 201, answer
    else:
        assert_error(response, answer, 400, "1117", ["fetch-price"])
        assert answer["additionalDetails"] == ["fetch-price: sent twice with different values"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_query_value_over_64_characters_is_1132_as_on_every_endpoint(client, partner, method):
    path, body = (ORDERS, new_order()) if method == "POST" else (f"{ORDERS}/5000000001", {"externalReferenceId": "X"})
    response, answer = await send(client, partner, body, method=method, path=path, params={"fetch-price": "t" * 65})
    assert_error(response, answer, 400, "1132", ["fetch-price"])
    response, answer = await send(client, partner, body, method=method, path=path, params={"fetch-price": "t" * 64})
    assert_error(response, answer, 400, "1117", ["fetch-price"])  # within the limit: just not true or false


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_query_value_that_is_not_utf8_is_1117(client, partner, method):
    path, body = (ORDERS, new_order()) if method == "POST" else (f"{ORDERS}/5000000001", {"externalReferenceId": "X"})
    response, answer = await send(client, partner, body, path=f"{path}?fetch-price=%FF", method=method, key="bad-q")
    assert_error(response, answer, 400, "1117", ["fetch-price"])
    # The request alone is at fault: the answer is stored and replayed.
    again, replayed = await send(client, partner, body, path=f"{path}?fetch-price=%FF", method=method, key="bad-q")
    assert (again.status, again.headers.get("Idempotent-Replayed"), replayed) == (400, "true", answer)


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"text"', b""])
async def test_body_that_is_not_a_json_object_is_1117(client, partner, raw):
    headers = await partner_headers(client, partner)
    response = await client.post(ORDERS, data=raw, headers={**headers, "Content-Type": "application/json"})
    assert_error(response, await response.json(), 400, "1117")


async def test_unknown_customer_is_1116(client, partner):
    response, answer = await send(client, partner, new_order(), path="/v3/customers/C2/orders")
    assert_error(response, answer, 404, "1116")


# -- RETURN ----------------------------------------------------------------------------------------------


def return_of(reference, *specs):
    return {"orderType": "RETURN", "referenceOrderId": reference, "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": n, "offerId": offer, "quantity": q} for n, offer, q in specs]}


async def test_return_built_from_the_order_as_read_is_accepted(client, partner, db_url):
    original = await (await client.get(f"{ORDERS}/5000000001", headers=await partner_headers(client, partner))).json()
    body = {"orderType": "RETURN", "referenceOrderId": original["orderId"], "currencyCode": "USD",
            "externalReferenceId": "RET-1", "lineItems": original["lineItems"]}
    response, order = await send(client, partner, body)
    assert response.status == 201, order
    assert order["orderType"] == "RETURN" and order["referenceOrderId"] == "5000000001"
    assert [line["subscriptionId"] for line in order["lineItems"]] == ["SUB-1", "SUB-2"]
    # Everything is now pending return: nothing is left.
    response, answer = await send(client, partner, return_of("5000000001", (1, "OFFER-A", 1)))
    assert_error(response, answer, 400, "2133")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (return_of("nope", (1, "OFFER-A", 1)), 404, "2115"),
        (return_of("5000000003", (1, "OFFER-A", 1)), 404, "2115"),  # a TRANSFER cannot be returned
        (return_of("5000000002", (1, "OFFER-A", 1)), 400, "2134"),  # 20 days old
        (return_of("5000000001", (5, "OFFER-A", 1)), 400, "2131"),
        (return_of("5000000001", (1, "OFFER-B", 1)), 400, "2130"),
        (return_of("5000000001", (1, "OFFER-A", 2)), 400, "2120"),  # line 1 has quantity 1
    ],
)
async def test_return_rules(client, partner, body, status, code):
    response, answer = await send(client, partner, body)
    assert_error(response, answer, status, code)


async def test_a_returns_own_problems_and_those_of_its_original_are_named_together(client, partner):
    """So that the client fixes its request once; what depends on the original is not stored."""
    body = return_of("5000000001", (1, "OFFER-A", 5), (9, "OFFER-A", 1))
    body["lineItems"][1]["colour"] = "red"
    for _ in range(2):
        response, answer = await send(client, partner, body, key="return-all-at-once")
        assert_error(response, answer, 400, "1121", ["colour", "quantity", "extLineItemNumber"])
        assert "Idempotent-Replayed" not in response.headers  # not stored: run again
    assert answer["additionalDetails"] == [
        "Line Item: 9, Reason: unknown field colour",
        "Line Item: 1, Reason: at most 1 left to return",
        "Line Item: 9, Reason: no such line in the referenced order",
    ]
    body["referenceOrderId"] = "5000000002"  # 20 days old: the whole RETURN is refused
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "1121", ["colour", "referenceOrderId"])
    assert answer["additionalDetails"][-1] == "The referenced order is older than 14 days"


@pytest.mark.parametrize("lines", [None, {}, "x"])
async def test_a_return_without_a_list_of_lines_still_names_its_originals_problems(client, partner, lines):
    """A missing or malformed lineItems is the body's own problem; the original's age is the whole RETURN's,
    and is named with it (and the answer, which depends on the original, is not stored)."""
    body = return_of("5000000002")  # 20 days old
    if lines is None:
        del body["lineItems"]
    else:
        body["lineItems"] = lines
    for _ in range(2):
        response, answer = await send(client, partner, body, key=f"return-no-lines-{lines!r}")
        assert response.status == 400 and "Idempotent-Replayed" not in response.headers
        assert "referenceOrderId" in answer["invalidFields"] and "lineItems" in answer["invalidFields"]
        assert answer["additionalDetails"][-1] == "The referenced order is older than 14 days"


async def test_partial_returns_add_up_and_failed_ones_give_back(client, partner, db_url):
    # Line 2 of 5000000001 has quantity 2.
    response, first = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 1)))
    assert response.status == 201
    response, second = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 1)))
    assert response.status == 201
    response, answer = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 1)))
    assert_error(response, answer, 400, "2120")
    cli(db_url, "orders", "set-status", second["orderId"], "1004")
    response, answer = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 1)))
    assert response.status == 201, answer


async def test_a_return_made_active_again_must_still_find_what_it_returns(client, partner, db_url):
    """set-status took a failed RETURN back to pending although later returns had taken its quantity: the
    original was returned three times over two bought."""
    response, failed = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 2)))
    assert response.status == 201
    cli(db_url, "orders", "set-status", failed["orderId"], "1004")
    response, later = await send(client, partner, return_of("5000000001", (2, "OFFER-B", 1)))
    assert response.status == 201
    refused = cli(db_url, "orders", "set-status", failed["orderId"], "1002", check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "where 1 remain" in refused.stderr, refused.stderr
    headers = await partner_headers(client, partner)
    assert (await (await client.get(f"{ORDERS}/{failed['orderId']}", headers=headers)).json())["status"] == "1004"
    cli(db_url, "orders", "set-status", later["orderId"], "1008")  # what it takes is there again
    assert cli(db_url, "orders", "set-status", failed["orderId"], "1000").returncode == 0


async def test_an_imported_return_without_an_original_may_be_made_active_again(client, partner, db_url, load):
    """The guard above refused it: no original, so nothing of one was left to return."""
    from conftest import order_record

    await load([order_record("9000000001", "C1", "2029-01-01T00:00:00Z", status="1004", order_type="RETURN")])
    assert cli(db_url, "orders", "set-status", "9000000001", "1000").returncode == 0


async def test_completing_returns_cancels_fully_returned_lines(client, partner, db_url):
    response, ret = await send(client, partner, return_of("5000000001", (1, "OFFER-A", 1), (2, "OFFER-B", 1)))
    assert response.status == 201
    cli(db_url, "orders", "set-status", ret["orderId"], "1000")
    original = await (await client.get(f"{ORDERS}/5000000001", headers=await partner_headers(client, partner))).json()
    assert [line["status"] for line in original["lineItems"]] == ["1008", "1000"]  # line 2 only partly returned


@pytest.mark.parametrize("completed", [("R1", "O"), ("O", "R1"), ("R1", "R2", "O"), ("R1", "O", "R2")])
async def test_a_return_of_a_pending_order_shares_its_lines_subscriptions_whichever_completes_first(
        client, partner, db_url, completed):
    """A pending order's lines have no subscription yet, so its RETURNs' lines had none either: each got a new
    one on completion, and `subscription-id` never found them together."""
    headers = await partner_headers(client, partner)
    response, original = await send(client, partner, new_order(lineItems=lines((1, {"quantity": 2}), (2, {}))))
    ids = {"O": original["orderId"]}
    for name in ("R1", "R2"):
        response, ret = await send(client, partner, return_of(original["orderId"], (1, "OFFER-A", 1)))
        assert response.status == 201 and ret["lineItems"][0]["subscriptionId"] == "", ret
        ids[name] = ret["orderId"]
    for name in completed:
        cli(db_url, "orders", "set-status", ids[name], "1000")
    subscriptions = {(await (await client.get(f"{ORDERS}/{ids[name]}", headers=headers)).json())["lineItems"][0][
        "subscriptionId"] for name in completed}
    assert len(subscriptions) == 1 and "" not in subscriptions, subscriptions
    found = await (await client.get(f"{ORDERS}?subscription-id={subscriptions.pop()}", headers=headers)).json()
    assert {o["orderId"] for o in found["items"]} == {ids[name] for name in completed}


async def test_nul_characters_are_refused_and_match_nothing(client, partner):
    body = new_order(lineItems=lines((1, {"offerId": "OFFER\x00A"})))
    response, answer = await send(client, partner, body)
    assert_error(response, answer, 400, "1117", ["offerId"])
    response, answer = await send(client, partner, {"externalReferenceId": "a\x00b"}, method="PATCH",
                                  path=f"{ORDERS}/5000000001")
    assert_error(response, answer, 400, "1117", ["externalReferenceId"])
    response, answer = await send(client, partner, new_order(), path="/v3/customers/C%001/orders")
    assert_error(response, answer, 404, "1116")
    history = await client.get("/v3/customers/C%001/orders", headers=await partner_headers(client, partner))
    assert history.status == 404
    filtered = await client.get(f"{ORDERS}?offer-id=OFFER%00A", headers=await partner_headers(client, partner))
    assert (await filtered.json())["totalCount"] == 0
