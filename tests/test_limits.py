"""Every body, string, query value and token form from the network is bounded, and a request
beyond a bound is the client's 400, never a 500."""
from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import cli, customer_record, order_record, partner_headers, reseller_record

from schemas.bodies import MAX_DEPTH
from schemas.problems import MAX_LINK_URI, MAX_STRING
from schemas.tokens import MAX_FORM_FIELDS

ORDERS = "/v3/customers/C1/orders"
TOKEN = "/ims/token/v3"
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
    response = await send_answer(client, partner, raw, key=key, method=method, path=path, params=params)
    return response.status, await response.json()


async def send_answer(client, partner, raw: bytes, *, key: str | None = None, method: str = "POST",
                      path: str = ORDERS, params: Any = None) -> aiohttp.ClientResponse:
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    headers["X-Correlation-Id"] = key or f"limits-{next(_keys)}"
    return await client.request(method, path, data=raw, headers=headers, params=params)


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


@pytest.mark.parametrize("refused", [nested(MAX_DEPTH + 1), nested(1025), b'{"orderType":"NEW","orderType":"PREVIEW"}'])
async def test_a_json_object_nested_too_deep_or_with_a_member_twice_is_stored_for_replay(client, partner, refused):
    """A JSON object all the same: its 1117 is caused by the request alone, so the key is taken by it; its bytes
    are its fingerprint ({"orderType":"NEW","orderType":"PREVIEW"} would read as {"orderType":"PREVIEW"})."""
    first = await send_answer(client, partner, refused, key="taken")
    again = await send_answer(client, partner, refused, key="taken")
    assert (first.status, first.headers.get("Idempotent-Replayed")) == (400, None)
    assert (again.status, again.headers.get("Idempotent-Replayed"), await again.read()) == (
        400, "true", await first.read())
    assert (await first.json())["code"] == "1117"
    for other in (orjson.dumps(order()), b'{"orderType":"PREVIEW"}', refused + b" "):
        assert (await send(client, partner, other, key="taken"))[1]["code"] == "4123"


@pytest.mark.parametrize("refused", [b"[]", b'{"orderType":', b"\xff", b"[" * 40 + b"]" * 40, b"[" * 1100 + b"]" * 1100])
async def test_a_body_that_is_no_json_object_is_not_stored_for_replay(client, partner, refused):
    status, body = await send(client, partner, refused, key="free")
    assert (status, body["code"]) == (400, "1117")
    status, body = await send(client, partner, orjson.dumps(order()), key="free")
    assert status == 200, body  # the key was not taken by the refused body


@pytest.mark.parametrize("field", ["offerId", "deploymentId", "subscriptionId", "status", "unknownEcho"])
async def test_line_strings_over_the_limit_are_1117_with_the_line(client, partner, field):
    line = {"extLineItemNumber": 7, "offerId": "OFFER-A", "quantity": 1, field: "x" * MAX_STRING}
    accepted = await send(client, partner, orjson.dumps(order(lineItems=[line])))
    if field != "unknownEcho":
        assert accepted[0] == 200, accepted
    line[field] = "x" * (MAX_STRING + 1)
    status, body = await send(client, partner, orjson.dumps(order(lineItems=[line])))
    assert (status, body["code"] if field != "unknownEcho" else "1117") == (400, "1117"), body
    assert field in body["invalidFields"]
    assert f"Line Item: 7, Reason: {field} is longer than {MAX_STRING} characters" in body["additionalDetails"]


async def test_a_900_kb_offer_id_is_refused(client, partner):
    line = {"extLineItemNumber": 1, "offerId": "O" * 900_000, "quantity": 1}
    status, body = await send(client, partner, orjson.dumps(order("NEW", lineItems=[line])))
    assert (status, body["code"], body["invalidFields"]) == (400, "1117", ["offerId"])
    assert len(orjson.dumps(body)) < 1000  # the value is not echoed


@pytest.mark.parametrize(("overrides", "field"), [
    ({"referenceOrderId": "R" * (MAX_STRING + 1)}, "referenceOrderId"),
    ({"status": "S" * (MAX_STRING + 1)}, "status"),
    ({"pricing": {"note": "n" * (MAX_STRING + 1)}}, "note"),
    ({"links": {"self": {"uri": "/" * (MAX_LINK_URI + 1), "method": "GET", "headers": []}}}, "uri"),
    ({"links": {"self": {"uri": "/", "method": "M" * (MAX_STRING + 1), "headers": []}}}, "method"),
])
async def test_order_strings_over_their_limit_are_1117(client, partner, overrides, field):
    status, body = await send(client, partner, orjson.dumps(order("RETURN", **overrides)))
    assert (status, body["code"]) == (400, "1117"), body
    assert field in body["invalidFields"]


async def test_echoed_links_may_carry_a_uri_of_255(client, partner):
    links = {"self": {"uri": "/" * MAX_LINK_URI, "method": "GET", "headers": []}}
    line = {"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1, "links": links}
    status, body = await send(client, partner, orjson.dumps(order(links=links, lineItems=[line])))
    assert status == 200, body


async def test_patch_strings_keep_their_limits(client, partner):
    path = f"{ORDERS}/5000000001"
    status, body = await send(client, partner, orjson.dumps({"externalReferenceId": "X" * 36}), method="PATCH",
                              path=path)
    assert (status, body["code"]) == (400, "2126")
    raw = b'{"externalReferenceId":"A","externalReferenceId":"B"}'
    status, body = await send(client, partner, raw, method="PATCH", path=path)
    assert (status, body["code"], body["invalidFields"]) == (400, "1117", ["externalReferenceId"])


async def test_post_query_values_over_the_limit_are_1132(client, partner):
    """"every string query value too (1132)": a write's query included."""
    status, body = await send(client, partner, orjson.dumps(order()), params={"fetch-price": "t" * 5000})
    assert (status, body["code"], body["invalidFields"]) == (400, "1132", ["fetch-price"])


@pytest.mark.parametrize("name", ["offer-id", "subscription-id", "reference-order-id", "external-reference-id",
                                  "reseller-id", "status", "order-type", "start-date", "limit", "offset"])
async def test_history_values_over_the_limit_are_1132(client, partner, name):
    headers = await partner_headers(client, partner)
    response = await client.get(ORDERS, params={name: "1" * (MAX_STRING + 1)}, headers=headers)
    body = await response.json()
    assert (response.status, body["code"], body["invalidFields"]) == (400, "1132", [name])


@pytest.mark.parametrize("name", ["offset", "limit"])
async def test_thousands_of_digits_are_1132_not_500(client, partner, name):
    headers = await partner_headers(client, partner)
    response = await client.get(ORDERS, params={name: "9" * 4301}, headers=headers)
    body = await response.json()
    assert (response.status, body["code"], body["invalidFields"]) == (400, "1132", [name])


async def test_history_id_values_of_the_limit_are_read(client, partner):
    headers = await partner_headers(client, partner)
    response = await client.get(ORDERS, params={"offer-id": "1" * MAX_STRING}, headers=headers)
    assert response.status == 200


def _import(db_url, tmp_path, line: bytes):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    records = [reseller_record("R1", "P1"), customer_record("C1", "R1")]
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + line + b"\n")
    return cli(db_url, "import", str(path), check=False)


def _order_line(**overrides: Any) -> dict[str, Any]:
    return {**order_record("2000000009", "C1", "2029-01-01T00:00:00Z"), **overrides}


@pytest.mark.parametrize(("line", "reason"), [
    (orjson.dumps(_order_line(externalReferenceId="X" * 36)), "externalReferenceId"),
    (orjson.dumps(_order_line(resellerId="R" * (MAX_STRING + 1))), f"resellerId is longer than {MAX_STRING}"),
    (orjson.dumps(_order_line(lineItems=[{"extLineItemNumber": 1, "offerId": "O" * 900_000, "quantity": 1}])),
     f"offerId is longer than {MAX_STRING}"),
    (orjson.dumps(_order_line(links={"self": {"uri": "/" * (MAX_LINK_URI + 1)}})), "uri is longer than 255"),
    (orjson.dumps(_order_line())[:-1] + b',"orderId":"2000000010"}', "orderId sent twice"),
    (orjson.dumps(_order_line())[:-1] + b',"links":' + b"[" * 600 + b"]" * 600 + b"}", f"{MAX_DEPTH} levels"),
    (orjson.dumps(_order_line())[:-1] + b',"links":' + b"[" * 5000 + b"]" * 5000 + b"}", f"{MAX_DEPTH} levels"),
])
def test_import_applies_the_string_and_nesting_limits(db_url, tmp_path, line, reason):
    result = _import(db_url, tmp_path, line)
    assert result.returncode == 1
    assert "line 3" in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_import_takes_strings_at_their_limits(db_url, tmp_path):
    line = _order_line(externalReferenceId="X" * 35, links={"self": {"uri": "/" * MAX_LINK_URI}},
                       lineItems=[{"extLineItemNumber": 1, "offerId": "O" * MAX_STRING, "quantity": 1}])
    result = _import(db_url, tmp_path, orjson.dumps(line))
    assert result.returncode == 0, result.stderr


async def token(client, partner, body: str, query: str = "") -> tuple[int, dict[str, Any]]:
    body = body.replace("KEY", partner.api_key).replace("SECRET", partner.client_secret)
    query = query.replace("KEY", partner.api_key).replace("SECRET", partner.client_secret)
    response = await client.post(f"{TOKEN}?{query}", data=body.encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    return response.status, await response.json()


GOOD = "grant_type=client_credentials&client_id=KEY&client_secret=SECRET"


@pytest.mark.parametrize(("body", "query"), [
    ("grant_type=password&grant_type=client_credentials&client_id=KEY&client_secret=SECRET", ""),
    ("grant_type=client_credentials&grant_type=client_credentials&client_id=KEY&client_secret=SECRET", ""),
    (GOOD + "&client_secret=SECRET", ""),
    ("", GOOD + "&client_id=KEY"),
    ("grant_type=client_credentials", "client_id=KEY&client_id=KEY&client_secret=SECRET"),
])
async def test_a_token_parameter_sent_twice_in_one_place_is_invalid_request(client, partner, body, query):
    status, answer = await token(client, partner, body, query)
    assert (status, answer["error"]) == (400, "invalid_request"), answer
    assert "sent more than once" in answer["error_description"]


async def test_a_token_parameter_in_the_body_and_the_query_is_not_sent_twice(client, partner):
    status, body = await token(client, partner, GOOD, GOOD)
    assert status == 200, body


@pytest.mark.parametrize("fields", [MAX_FORM_FIELDS + 1, 1000, 10_000])
async def test_a_token_form_of_more_than_20_fields_is_invalid_request(client, partner, fields):
    padding = "".join(f"&extra{n}=x" for n in range(fields - 3))
    status, body = await token(client, partner, GOOD + padding)
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await token(client, partner, GOOD + "".join(f"&extra{n}=x" for n in range(MAX_FORM_FIELDS - 3)))
    assert status == 200, body



async def test_empty_fields_between_ampersands_are_not_fields(client, partner):
    for body in (GOOD + "&" * MAX_FORM_FIELDS, "&" * 1000 + GOOD.replace("&", "&&&") + "&&",
                 GOOD + "".join(f"&&extra{n}=x&" for n in range(MAX_FORM_FIELDS - 3))):
        status, answer = await token(client, partner, body)
        assert status == 200, answer  # the first two were "at most 20 fields": it counted the ampersands
    status, answer = await token(client, partner, GOOD + "".join(f"&&extra{n}=x&" for n in range(MAX_FORM_FIELDS - 2)))
    assert (status, answer["error"]) == (400, "invalid_request")

@pytest.mark.parametrize("fields", [MAX_FORM_FIELDS + 1, 2000])
async def test_a_multipart_token_form_of_many_fields_is_invalid_request(client, partner, fields):
    form = aiohttp.FormData([("grant_type", "client_credentials"), *((f"x{n}", "y") for n in range(fields))])
    form.add_field("file", b"x", filename="x")  # makes it multipart/form-data
    response = await client.post(TOKEN, data=form)
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")


async def test_a_request_beyond_those_served_at_once_is_503_before_its_body_is_read(aiohttp_client, db_url, partner):
    """A probe's 3,000 connections, each holding 60 KB of a body, took a process to 1.5 GB: each request may
    hold up to the body limit in memory. One request more than GATEWAY_MAX_REQUESTS_IN_FLIGHT is refused
    at once, in the error shape, and its connection closed; the operations endpoints are never refused."""
    import asyncio

    from conftest import TEST_SIGNING_KEY, UNLIMITED
    from gateway.app import create_app
    from gateway.keys import CAPACITY
    from gateway.settings import Settings

    settings = Settings(**UNLIMITED, database_url=db_url, jwt_secret=TEST_SIGNING_KEY, max_requests_in_flight=2)
    client = await aiohttp_client(create_app(settings))
    headers = await partner_headers(client, partner)
    release = asyncio.Event()

    async def slow_body():
        yield b'{"orderType": "PREVIEW", "currencyCode": "USD", '
        await release.wait()
        yield b'"lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 1}]}'

    held = [asyncio.ensure_future(client.post(ORDERS, data=slow_body(), headers={
        **headers, "Content-Type": "application/json", "X-Correlation-Id": f"held-{n}"})) for n in range(2)]
    capacity = client.app[CAPACITY]
    for _ in range(100):  # until both are inside, waiting for the rest of their bodies
        if capacity.serving == 2:
            break
        await asyncio.sleep(0.05)
    refused = await client.get(ORDERS, headers={**headers, "X-Request-Id": "one-too-many"})
    answer = await refused.json()
    assert (refused.status, answer["code"], refused.headers["Retry-After"]) == (503, "503", "1")
    assert refused.headers["X-Request-Id"] == "one-too-many" and refused.headers["Connection"] == "close"
    token = await client.post("/ims/token/v3", data={"grant_type": "client_credentials",
                                                    "client_id": partner.api_key, "client_secret": "x"})
    assert (token.status, (await token.json())["code"]) == (503, "503")  # the token endpoints take bodies too
    assert (await client.get("/healthz")).status == 200
    release.set()
    assert [(await response).status for response in held] == [200, 200]
    assert (await client.get(ORDERS, headers=headers)).status == 200
