"""Every answer the gateway gives is documented for its operation: each operation (history, details, POST,
PATCH, the feed, both token endpoints) is driven through good and bad requests, every (operation, status,
error code) seen is recorded, and each must appear in the OpenAPI document: the status in the operation's
`responses`, the code in that response's `x-error-codes`, and each of the API's headers it carried in that
response's `headers`.
(409 4122, 410 4124, 408, 414, 415, 431 and 503 need a race, a purge, a slow client, the gateway's own HTTP
server or a failing database: the tests of replay, the feed, the HTTP layer and database faults drive them.)"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import TEST_SIGNING_KEY, UNLIMITED, bearer, customer_record, order_record, partner_headers, reseller_record

from gateway.app import create_app
from gateway.credentials import IssuedCredential
from gateway.settings import Settings
from schemas import examples

HISTORY = "/v3/customers/{customerId}/orders"
ORDER = "/v3/customers/{customerId}/orders/{orderId}"
FEED = "/v3/order-events"
TOKEN_PATHS = ("/ims/token/v3", "/ims/token/v2")
ORDERS, ONE = "/v3/customers/C1/orders", "/v3/customers/C1/orders/5000000001"
LINE = {"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}
# The headers of the API an answer may carry: each one seen must be documented for that answer.
API_HEADERS = ("X-Request-Id", "X-Correlation-Id", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
               "Retry-After", "Idempotent-Replayed", "ETag", "Cache-Control", "Allow", "WWW-Authenticate", "Location")

Observed = set[tuple[str, str, int, str | None]]  # (path, method, status, error code)


class Recorder:
    def __init__(self, client: TestClient, credential: IssuedCredential) -> None:
        self.client, self.credential = client, credential
        self.seen: Observed = set()
        self.headers_seen: set[tuple[str, str, int, str]] = set()

    async def headers(self, **overrides: str | None) -> dict[str, str]:
        sent = {**await partner_headers(self.client, self.credential), **overrides}
        return {name: value for name, value in sent.items() if value is not None}

    async def send(self, template: str, method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
        response = await self.client.request(method, url, **kwargs)
        body = await response.read()
        parsed = json.loads(body) if body and response.content_type == "application/json" else None
        code = parsed.get("code", parsed.get("error")) if isinstance(parsed, dict) and response.status >= 400 else None
        self.seen.add((template, method.lower(), response.status, code))
        self.headers_seen |= {(template, method.lower(), response.status, name)
                              for name in API_HEADERS if name in response.headers}
        return response.status, parsed, response.headers

    async def partner(self, template: str, method: str, url: str, *, headers: dict[str, str] | None = None,
                      **kwargs: Any) -> tuple[int, Any, Any]:
        return await self.send(template, method, url, headers=headers or await self.headers(), **kwargs)


@pytest.fixture
def documents_settings(tmp_path: Any) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return Settings(**{**UNLIMITED, **overrides}, database_url=f"sqlite:///{tmp_path}/gateway.db",
                        jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0)
    return make


@pytest.fixture
async def recorder(aiohttp_client: Any, documents_settings: Callable[..., Settings],
                   make_partner: Callable[..., Awaitable[IssuedCredential]],
                   load: Callable[..., Awaitable[None]]) -> Recorder:
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"),
                order_record("5000000001", "C1", "2020-01-01T00:00:00Z", offers=["OFFER-A", "OFFER-B"])])
    return Recorder(await aiohttp_client(create_app(documents_settings(max_body_bytes=64 * 1024))), credential)


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    """The documents do not depend on the storage backend: SQLite only."""
    return f"sqlite:///{tmp_path}/gateway.db"


async def _checks_of_every_partner_path(rec: Recorder, template: str, method: str, url: str, **kw: Any) -> None:
    """The credential and correlation checks."""
    for overrides in ({"X-Api-Key": None}, {"X-Api-Key": "unknown"}, {"Authorization": None},
                      {"Authorization": "Bearer nonsense"}, {"X-Correlation-Id": None}, {"X-Correlation-Id": ""}):
        await rec.partner(template, method, url, headers=await rec.headers(**overrides), **kw)


async def _reads(rec: Recorder) -> None:
    for template, url in ((HISTORY, ORDERS), (ORDER, ONE), (FEED, FEED)):
        await _checks_of_every_partner_path(rec, template, "GET", url)
        status, _, answer = await rec.partner(template, "GET", url)
        assert status == 200
        await rec.partner(template, "GET", url, headers=await rec.headers(**{"If-None-Match": answer["ETag"]}))
    for query in ("?limit=0", "?offset=5", "?start-date=yesterday", "?unknown=1", "?limit=1&limit=2"):
        await rec.partner(HISTORY, "GET", ORDERS + query)
    for query in ("?cursor=nonsense", "?limit=0", "?type=order.deleted", "?unknown=1"):
        await rec.partner(FEED, "GET", FEED + query)
    await rec.partner(ORDER, "GET", ONE + "?unknown=1")
    for template, url in ((HISTORY, "/v3/customers/NOPE/orders"), (ORDER, "/v3/customers/NOPE/orders/1"),
                          (ORDER, "/v3/customers/C1/orders/9999999999")):
        await rec.partner(template, "GET", url)


_BAD_ORDERS = [
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{**LINE, "offerId": ""}]},  # 1117
    {"orderType": "SWITCH", "lineItems": [LINE]},
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [LINE], "colour": "red"},  # 1121
    {"currencyCode": "USD", "lineItems": [LINE]},  # 1122
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [LINE] * 500},  # 2119
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{**LINE, "quantity": 0}]},  # 2120
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [LINE, LINE]},  # 2121
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{**LINE, "extLineItemNumber": 10**7}]},  # 2123
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [LINE], "externalReferenceId": "r" * 36},  # 2126
    {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{**LINE, "flexDiscountCodes": ["X"]}]},  # 2141
    {"orderType": "RETURN", "referenceOrderId": "9999999999", "currencyCode": "USD", "lineItems": [LINE]},  # 2115
    {"orderType": "RETURN", "referenceOrderId": "5000000001", "currencyCode": "USD", "lineItems": [LINE]},  # 2134
]


async def _returns(rec: Recorder) -> None:
    """The RETURN rules, against an order placed now."""
    status, placed, _ = await rec.partner(HISTORY, "POST", ORDERS, json={
        "orderType": "NEW", "currencyCode": "USD", "lineItems": [LINE]})
    assert status == 201
    reference = {"orderType": "RETURN", "referenceOrderId": placed["orderId"], "currencyCode": "USD"}
    for lines in ([{**LINE, "offerId": "OFFER-Z"}], [{**LINE, "extLineItemNumber": 7}],  # 2130, 2131
                  [{**LINE, "quantity": 2}], [LINE], [LINE]):  # 2120 over what remains, 201, 2133
        await rec.partner(HISTORY, "POST", ORDERS, json={**reference, "lineItems": lines})


async def _writes(rec: Recorder) -> None:
    await _checks_of_every_partner_path(rec, HISTORY, "POST", ORDERS, json=examples.NEW_ORDER)
    await _checks_of_every_partner_path(rec, ORDER, "PATCH", ONE, json=examples.ORDER_UPDATE)
    for body in _BAD_ORDERS:
        await rec.partner(HISTORY, "POST", ORDERS, json=body)
    for template, method, url, body in ((HISTORY, "POST", ORDERS, examples.NEW_ORDER),
                                        (ORDER, "PATCH", ONE, examples.ORDER_UPDATE)):
        sent = await rec.headers()
        assert (await rec.partner(template, method, url, headers=sent, json=body))[0] in (200, 201)
        _, _, replayed = await rec.partner(template, method, url, headers=sent, json=body)
        assert replayed["Idempotent-Replayed"] == "true"
        await rec.partner(template, method, url, headers=sent, json={**body, "externalReferenceId": "other"})  # 4123
        not_json = {**await rec.headers(), "Content-Type": "application/json"}
        await rec.partner(template, method, url, headers=not_json, data=b"not json")
        await rec.partner(template, method, url, json=[body])
        await rec.partner(template, method, url + "?unknown=1", json=body)
        await rec.partner(template, method, url, data=b" " * (65 * 1024))  # 413
    await rec.partner(HISTORY, "POST", ORDERS, json=examples.PREVIEW_ORDER)
    await rec.partner(HISTORY, "POST", "/v3/customers/NOPE/orders", json=examples.NEW_ORDER)
    for url, body in ((ONE, {}), (ONE, {"externalReferenceId": "r" * 36}), (ONE, {"orderId": "1"}),
                      ("/v3/customers/C1/orders/9999999999", examples.ORDER_UPDATE),
                      ("/v3/customers/NOPE/orders/1", examples.ORDER_UPDATE)):
        await rec.partner(ORDER, "PATCH", url, json=body)
    await _returns(rec)
    await _reused_request_id(rec)


async def _reused_request_id(rec: Recorder) -> None:
    headers = await rec.headers(**{"X-Request-Id": "docs-request-1"})
    await rec.partner(HISTORY, "POST", ORDERS, headers=headers, json=examples.NEW_ORDER)
    await rec.partner(HISTORY, "POST", ORDERS, headers=await rec.headers(**{"X-Request-Id": "docs-request-1"}),
                      json=examples.PREVIEW_ORDER)  # 4120


async def _wrong_methods(rec: Recorder) -> None:
    """A method a path does not have: documented on every operation of that path."""
    for template, url, method in ((HISTORY, ORDERS, "DELETE"), (ORDER, ONE, "PUT"), (FEED, FEED, "POST")):
        status, _, answer = await rec.partner(template, method, url)
        assert status == 405 and answer["Allow"]
    for path in TOKEN_PATHS:
        await rec.send(path, "GET", path)


async def _tokens(rec: Recorder) -> None:
    good = {"grant_type": "client_credentials", "client_id": rec.credential.api_key,
            "client_secret": rec.credential.client_secret}
    for path in TOKEN_PATHS:
        for form in (good, {**good, "grant_type": "password"}, {**good, "client_secret": "wrong"},
                     {"grant_type": "client_credentials"}, {}):
            await rec.send(path, "POST", path, data=form)
        await rec.send(path, "POST", path + "?grant_type=client_credentials&grant_type=x", data=good)
        await rec.send(path, "POST", path, data=good, headers={"Authorization": "Digest x"})
        await rec.send(path, "POST", path, data=b"grant_type=" + b"x" * (65 * 1024),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    for _ in range(11):  # the lock-out after 10 failures
        await rec.send(TOKEN_PATHS[0], "POST", TOKEN_PATHS[0], data={**good, "client_secret": "wrong"})


async def _over_the_rate_limit(aiohttp_client: Any, settings: Settings, credential: IssuedCredential,
                               seen: Observed, headers_seen: set[tuple[str, str, int, str]]) -> None:
    client = await aiohttp_client(create_app(settings))
    rec = Recorder(client, credential)
    token = await bearer(client, credential)
    for template, method, url, body in ((HISTORY, "GET", ORDERS, None), (ORDER, "GET", ONE, None),
                                        (FEED, "GET", FEED, None), (HISTORY, "POST", ORDERS, examples.NEW_ORDER),
                                        (ORDER, "PATCH", ONE, examples.ORDER_UPDATE)):
        headers = {"X-Api-Key": credential.api_key, "Authorization": f"Bearer {token}"}
        for number in range(3):  # a burst of 1
            headers["X-Correlation-Id"] = f"limited-{method}-{template}-{number}"
            await rec.send(template, method, url, headers=headers, json=body)
    seen |= rec.seen
    headers_seen |= rec.headers_seen


def _documented_as(document: dict[str, Any], path: str, method: str, status: int) -> Iterator[tuple[str, Any]]:
    """The responses documented for an answer: its operation's, or those of every operation of its path for a
    method the path does not have (405)."""
    methods = [method] if method in document["paths"][path] else list(document["paths"][path])
    for documented_method in methods:
        yield documented_method, document["paths"][path][documented_method]["responses"].get(str(status))


def _undocumented(document: dict[str, Any], seen: Observed) -> list[str]:
    missing = []
    for path, method, status, code in sorted(seen, key=str):
        for documented_method, response in _documented_as(document, path, method, status):
            if response is None or (code is not None and code not in response.get("x-error-codes", [])):
                missing.append(f"{method.upper()} {path} (documented as {documented_method}): {status} {code}")
    return missing


def _undocumented_headers(document: dict[str, Any], seen: set[tuple[str, str, int, str]]) -> list[str]:
    return [
        f"{method.upper()} {path} {status} ({documented_method}): {header}"
        for path, method, status, header in sorted(seen, key=str)
        for documented_method, response in _documented_as(document, path, method, status)
        if response is not None and header not in response["headers"]
    ]


async def test_every_answer_observed_is_documented(recorder: Recorder, aiohttp_client: Any,
                                                   documents_settings: Callable[..., Settings]) -> None:
    await _reads(recorder)
    await _writes(recorder)
    await _wrong_methods(recorder)
    limited = documents_settings(rate_limit_per_second=0.001, rate_limit_burst=1)
    await _over_the_rate_limit(aiohttp_client, limited, recorder.credential, recorder.seen, recorder.headers_seen)
    await _tokens(recorder)  # last: its lock-out holds for every app on the database
    document = await (await recorder.client.get("/api/docs/openapi.json")).json()
    assert not _undocumented(document, recorder.seen)
    assert not _undocumented_headers(document, recorder.headers_seen)
    assert not [seen for seen in recorder.seen if seen[2] >= 400 and seen[3] is None]  # every error has its code
    statuses = {(status, code) for _, _, status, code in recorder.seen}
    # The test reaches what it means to: every status of the partner checks, the writes and the tokens.
    assert {(429, "4118"), (405, "405"), (413, "413"), (422, "4123"), (304, None),
            (400, "4120"), (400, "2133"), (400, "2134"), (429, "invalid_client")} <= statuses
