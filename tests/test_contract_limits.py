"""Every limit the API documents is the one it enforces: each test reads the number or pattern from the
OpenAPI document the gateway serves and probes the API on both sides of it, so the two cannot drift apart."""
from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import customer_record, partner_headers, reseller_record

from schemas.problems import MAX_STRING

ORDERS = "/v3/customers/C1/orders"
DOCUMENT = "/api/docs/openapi.json"


@pytest.fixture
async def partner(make_partner, load):
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    return credential


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get(DOCUMENT)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


def schema_of(document: dict[str, Any], component: str, field: str) -> dict[str, Any]:
    properties: dict[str, Any] = document["components"]["schemas"][component]["properties"]
    return dict(properties[field])


def parameter_of(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    parameters = document["paths"][path][method]["parameters"]
    (schema,) = [p["schema"] for p in parameters if p["name"] == name]
    return dict(schema)


def order(lines: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    body = {"orderType": "PREVIEW", "currencyCode": "USD", "externalReferenceId": "PO-1",
            "lineItems": [line(1)] if lines is None else lines}
    body.update(overrides)
    return body


def line(number: int, **overrides: Any) -> dict[str, Any]:
    return {"extLineItemNumber": number, "offerId": "OFFER-A", "quantity": 1, **overrides}


async def place(client, partner, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(ORDERS, json=body, headers=await partner_headers(client, partner))
    return response.status, await response.json()


async def assert_refused(client, partner, body: dict[str, Any], code: str, field: str) -> None:
    status, answer = await place(client, partner, body)
    assert (status, answer["code"]) == (400, code), answer
    assert field in answer["invalidFields"], answer


async def assert_accepted(client, partner, body: dict[str, Any]) -> None:
    status, answer = await place(client, partner, body)
    assert status == 200, answer  # a PREVIEW: validated, nothing stored


async def test_line_count(client, partner, document):
    documented = schema_of(document, "CreateOrderRequest", "lineItems")
    most, least = documented["maxItems"], documented["minItems"]
    await assert_accepted(client, partner, order([line(n) for n in range(1, most + 1)]))
    await assert_refused(client, partner, order([line(n) for n in range(1, most + 2)]), "2119", "lineItems")
    assert least == 1
    await assert_refused(client, partner, order([]), "1117", "lineItems")


async def test_a_list_too_long_has_only_its_first_lines_checked(client, partner, document):
    most = schema_of(document, "CreateOrderRequest", "lineItems")["maxItems"]
    lines = [line(n) for n in range(1, 5 * most)]
    lines[most - 1] = line(most, quantity=0)  # the last line an order can have: reported
    lines[most] = line(most + 1, unknownField=1)  # past it: only counted
    status, answer = await place(client, partner, order(lines))
    assert (status, answer["code"]) == (400, "2119"), answer
    assert answer["invalidFields"] == ["lineItems", "quantity"]
    assert answer["additionalDetails"][1:] == [f"Line Item: {most}, Reason: quantity must be an integer of at least 1"]


async def test_an_answer_names_at_most_a_thousand_problems(client, partner):
    body = order(**{f"unknown{n}": 1 for n in range(1500)})
    status, answer = await place(client, partner, body)
    assert (status, answer["code"]) == (400, "1121")
    assert answer["invalidFields"] == [f"unknown{n}" for n in range(1000)]
    assert answer["additionalDetails"][:2] == ["unknown0: unknown field unknown0", "unknown1: unknown field unknown1"]
    assert len(answer["additionalDetails"]) == 1001 and answer["additionalDetails"][-1] == "... and 500 more problems"


async def test_line_number_range(client, partner, document):
    documented = schema_of(document, "LineItemRequest", "extLineItemNumber")
    for number in (documented["minimum"], documented["maximum"]):
        await assert_accepted(client, partner, order([line(number)]))
    for number in (documented["minimum"] - 1, documented["maximum"] + 1):
        await assert_refused(client, partner, order([line(number)]), "2123", "extLineItemNumber")


async def test_quantity_range(client, partner, document):
    documented = schema_of(document, "LineItemRequest", "quantity")
    for quantity in (documented["minimum"], documented["maximum"]):
        await assert_accepted(client, partner, order([line(1, quantity=quantity)]))
    for quantity in (documented["minimum"] - 1, documented["maximum"] + 1):
        await assert_refused(client, partner, order([line(1, quantity=quantity)]), "2120", "quantity")


async def test_external_reference_length_and_characters(client, partner, document):
    documented = schema_of(document, "CreateOrderRequest", "externalReferenceId")
    assert schema_of(document, "UpdateOrderRequest", "externalReferenceId") == documented
    longest = documented["maxLength"]
    await assert_accepted(client, partner, order(externalReferenceId="X" * longest))
    await assert_refused(client, partner, order(externalReferenceId="X" * (longest + 1)), "2126",
                         "externalReferenceId")
    for character in '<>"[]{}()#&;\'/ \\':
        value = f"PO{character}1"
        if re.fullmatch(documented["pattern"], value):
            await assert_accepted(client, partner, order(externalReferenceId=value))
        else:
            await assert_refused(client, partner, order(externalReferenceId=value), "1117", "externalReferenceId")


@pytest.mark.parametrize("component", ["CreateOrderRequest", "LineItemRequest"])
async def test_currency_code_pattern(client, partner, document, component):
    documented = schema_of(document, component, "currencyCode")
    pattern, codes = documented["pattern"], documented["enum"]
    assert {"USD", "EUR", "JPY", "CHF"} <= set(codes) and "XXZ" not in codes
    for value in ("USD", "EUR", "usd", "US", "USDD", "U1D", "USD\n", "XXZ", "ZZZ"):
        body = order(currencyCode=value) if component == "CreateOrderRequest" else order(
            [line(1, currencyCode=value)], currencyCode=None)
        body = {k: v for k, v in body.items() if v is not None}
        if re.fullmatch(pattern, value) and value in codes:
            await assert_accepted(client, partner, body)
        else:
            await assert_refused(client, partner, body, "1117", "currencyCode")


async def test_history_limit(client, partner, document):
    least = parameter_of(document, "/v3/customers/{customerId}/orders", "get", "limit")["minimum"]
    applied = schema_of(document, "OrderPage", "limit")
    assert applied["minimum"] == least
    headers = await partner_headers(client, partner)
    for asked, answered in ((least, least), (applied["maximum"], applied["maximum"]),
                            (applied["maximum"] + 1, applied["maximum"])):
        response = await client.get(ORDERS, params={"limit": str(asked)}, headers=headers)
        assert response.status == 200
        assert (await response.json())["limit"] == answered
    response = await client.get(ORDERS, params={"limit": str(least - 1)}, headers=headers)
    assert (response.status, (await response.json())["invalidFields"]) == (400, ["limit"])


async def test_history_offset(client, partner, document):
    least = parameter_of(document, "/v3/customers/{customerId}/orders", "get", "offset")["minimum"]
    headers = await partner_headers(client, partner)
    assert (await client.get(ORDERS, params={"offset": str(least)}, headers=headers)).status == 200
    response = await client.get(ORDERS, params={"offset": str(least - 1)}, headers=headers)
    body = await response.json()
    assert (response.status, body["code"], body["invalidFields"]) == (400, "1132", ["offset"])


async def test_correlation_id_length(client, partner, document):
    documented = parameter_of(document, "/v3/customers/{customerId}/orders", "get", "X-Correlation-Id")
    headers = await partner_headers(client, partner)
    for length in (documented["minLength"], documented["maxLength"]):
        response = await client.get(ORDERS, headers={**headers, "X-Correlation-Id": "c" * length})
        assert response.status == 200
    for length in (documented["minLength"] - 1, documented["maxLength"] + 1):
        response = await client.get(ORDERS, headers={**headers, "X-Correlation-Id": "c" * length})
        assert (response.status, (await response.json())["code"]) == (400, "4119")


@pytest.mark.parametrize(("component", "field"), [
    ("LineItemRequest", "offerId"), ("LineItemRequest", "deploymentId"), ("LineItemRequest", "subscriptionId"),
    ("CreateOrderRequest", "referenceOrderId"),
])
async def test_string_length(client, partner, document, component, field):
    longest = schema_of(document, component, field)["maxLength"]
    assert longest == MAX_STRING  # the one limit of every string without one of its own

    def body(value: str) -> dict[str, Any]:
        if component == "LineItemRequest":
            return order([line(1, **{field: value})])
        return order(orderType="RETURN", **{field: value})

    if component == "LineItemRequest":
        await assert_accepted(client, partner, body("X" * longest))
    await assert_refused(client, partner, body("X" * (longest + 1)), "1117", field)


@pytest.mark.parametrize("name", ["offer-id", "subscription-id", "reference-order-id", "external-reference-id",
                                  "reseller-id"])
async def test_history_string_length(client, partner, document, name):
    documented = parameter_of(document, "/v3/customers/{customerId}/orders", "get", name)
    longest = documented.get("items", documented)["maxLength"]
    assert longest == MAX_STRING
    headers = await partner_headers(client, partner)
    assert (await client.get(ORDERS, params={name: "X" * longest}, headers=headers)).status == 200
    response = await client.get(ORDERS, params={name: "X" * (longest + 1)}, headers=headers)
    body = await response.json()
    assert (response.status, body["code"], body["invalidFields"]) == (400, "1132", [name])
