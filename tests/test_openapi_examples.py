"""The document's examples: each is valid against the schema it illustrates, every operation has them, and the
request examples are accepted by the gateway as they are (Swagger UI sends the first one unchanged)."""
from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import customer_record, order_record, partner_headers, reseller_record
from openapi_schema_validator import OAS30Validator

from schemas import examples

API_PREFIXES = ("/v3/", "/ims/")


def _media(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, media type object) of every request body and response body of the API's operations."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            bodies = [("request", operation.get("requestBody", {}))] + list(operation["responses"].items())
            for name, body in bodies:
                for media_type, media in body.get("content", {}).items():
                    found.append((f"{method} {path} {name} {media_type}", media))
    return found


async def test_examples_match_their_schemas(client: TestClient) -> None:
    document = await (await client.get("/api/docs/openapi.json")).json()
    checked = 0
    for where, media in _media(document):
        for name, example in media.get("examples", {}).items():
            validator = OAS30Validator({**media["schema"], "components": document["components"]})
            errors = [error.message for error in validator.iter_errors(example["value"])]
            assert not errors, (where, name, errors)
            checked += 1
    assert checked > 40


async def test_every_operation_shows_examples(client: TestClient) -> None:
    document = await (await client.get("/api/docs/openapi.json")).json()
    for path, item in document["paths"].items():
        if not path.startswith(API_PREFIXES):
            continue
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if "content" in response:
                    named = response["content"]["application/json"]["examples"]
                    assert set(response.get("x-error-codes", [])) <= set(named), (method, path, status)
                    assert named, (method, path, status)
            if method in ("post", "patch") and path.startswith("/v3/"):
                assert operation["requestBody"]["content"]["application/json"]["examples"]
            customer = [p for p in operation.get("parameters", []) if p["name"] == "customerId"]
            assert all(p["example"] == examples.CUSTOMER_ID for p in customer)


async def test_request_examples_are_accepted(client: TestClient, make_partner: Any, load: Any) -> None:
    credential = await make_partner("P1")
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    await load([reseller_record("R1", "P1"), customer_record(examples.CUSTOMER_ID, "R1"),
                order_record(examples.ORDER_ID, examples.CUSTOMER_ID, recent, offers=[examples.OFFER_ID])])
    orders = f"/v3/customers/{examples.CUSTOMER_ID}/orders"
    for body, status in ((examples.NEW_ORDER, 201), (examples.PREVIEW_ORDER, 200), (examples.RENEWAL_ORDER, 201),
                         (examples.RETURN_ORDER, 201)):
        response = await client.post(orders, json=body, headers=await partner_headers(client, credential))
        assert response.status == status, await response.text()
    response = await client.patch(f"{orders}/{examples.ORDER_ID}", json=examples.ORDER_UPDATE,
                                  headers=await partner_headers(client, credential))
    assert response.status == 200, await response.text()


async def test_error_examples_are_what_the_api_answers(client: TestClient, make_partner: Any, load: Any) -> None:
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record(examples.CUSTOMER_ID, "R1")])
    document = await (await client.get("/api/docs/openapi.json")).json()
    orders = f"/v3/customers/{examples.CUSTOMER_ID}/orders"
    documented = document["paths"]["/v3/customers/{customerId}/orders"]["get"]["responses"]["400"]
    headers = await partner_headers(client, credential)
    for code, query, sent in (("1132", "?limit=0", headers), ("4119", "", {**headers, "X-Correlation-Id": ""}),
                              ("1133", "?offset=30", headers)):
        answer = await (await client.get(orders + query, headers=sent)).json()
        example = documented["content"]["application/json"]["examples"][code]["value"]
        if code == "1133":  # the counts in its detail are the request's own
            answer["additionalDetails"] = example["additionalDetails"]
        assert answer == example


def _error_examples(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    examples_400 = document["paths"][path][method]["responses"]["400"]["content"]["application/json"]["examples"]
    return {code: example["value"] for code, example in examples_400.items()}


async def test_the_writes_refusal_examples_are_what_the_api_answers(client: TestClient, make_partner: Any,
                                                                  load: Any) -> None:
    """The bodies behind them sent as they are, and the RETURN rules' examples met for real: an original
    older than 14 days (2134), and one of this week returned by a line it lacks (2131) or with another offer
    (2130)."""
    credential = await make_partner("P1")
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    await load([reseller_record("R1", "P1"), customer_record(examples.CUSTOMER_ID, "R1"),
                order_record(examples.ORDER_ID, examples.CUSTOMER_ID, "2020-01-01T00:00:00Z"),
                order_record("5120008001", examples.CUSTOMER_ID, recent, offers=[examples.OFFER_ID])])
    document = await (await client.get("/api/docs/openapi.json")).json()
    orders = f"/v3/customers/{examples.CUSTOMER_ID}/orders"
    placing = _error_examples(document, "/v3/customers/{customerId}/orders", "post")
    updating = _error_examples(document, "/v3/customers/{customerId}/orders/{orderId}", "patch")

    async def answer(method: str, path: str, body: dict[str, Any]) -> Any:
        response = await client.request(method, path, json=body, headers=await partner_headers(client, credential))
        return await response.json()

    for code, body in examples.REFUSED_BODIES["place_order"].items():
        assert await answer("POST", orders, body) == placing[code], code
    for code, body in examples.REFUSED_BODIES["update_order"].items():
        assert await answer("PATCH", f"{orders}/{examples.ORDER_ID}", body) == updating[code], code
    line = examples.RETURN_ORDER["lineItems"][0]
    for code, reference, changed in (("2134", examples.ORDER_ID, {}), ("2131", "5120008001", {"extLineItemNumber": 3}),
                                     ("2130", "5120008001", {"offerId": "ANOTHER-OFFER"})):
        body = {**examples.RETURN_ORDER, "referenceOrderId": reference, "lineItems": [{**line, **changed}]}
        assert await answer("POST", orders, body) == placing[code], code
