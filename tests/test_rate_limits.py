"""Rate limits: each partner's token bucket, shared by its credentials and by every process on the database,
the RateLimit headers, 429 4118, and the token endpoints' limit on failed authentications."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from conftest import (
    TEST_SIGNING_KEY,
    cli,
    customer_record,
    partner_headers,
    process_headers,
    reseller_record,
    server_process,
)
from gateway.app import create_app
from gateway.credentials import IssuedCredential
from gateway.settings import Settings

ORDERS = "/v3/customers/C1/orders"
BODY = {"orderType": "NEW", "currencyCode": "USD",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def limited(aiohttp_client: Any, db_url: str) -> MakeClient:
    """An app on the test's database whose partners have `per_second` and `burst` by default; each call is
    another app, with a limiter of its own, as another process would be."""

    async def make(per_second: float, burst: int) -> TestClient:
        settings = Settings(database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                            rate_limit_per_second=per_second, rate_limit_burst=burst)
        return await aiohttp_client(create_app(settings))

    return make


@pytest.fixture
async def partner(make_partner: Any, load: Any) -> IssuedCredential:
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    return credential


def limit_headers(response: Any) -> tuple[int, int, int]:
    return tuple(int(response.headers[name]) for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))


async def test_a_burst_is_admitted_then_refused_with_4118(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=0.5, burst=5)
    headers = await partner_headers(client, partner)
    seen = []
    for _ in range(5):
        response = await client.get(ORDERS, headers=headers)
        assert response.status == 200
        seen.append(limit_headers(response))
    assert [remaining for _, remaining, _ in seen] == [4, 3, 2, 1, 0]
    assert all(limit == 5 for limit, _, _ in seen)
    assert seen[-1][2] == 10  # 5 tokens at 0.5 a second

    refused = await client.get(ORDERS, headers=headers)
    assert refused.status == 429
    body = await refused.json()
    assert body["code"] == "4118" and set(body) == {"code", "message", "additionalDetails", "invalidFields"}
    assert int(refused.headers["Retry-After"]) == 2  # one token at 0.5 a second
    assert limit_headers(refused)[:2] == (5, 0)
    assert refused.headers["X-Request-Id"] and refused.headers["X-Correlation-Id"] == headers["X-Correlation-Id"]


async def test_an_admitted_request_never_reports_a_full_bucket(limited: MakeClient, partner: IssuedCredential) -> None:
    """A process holds a lease of several tokens; refilled, the bucket beside it reached the burst, and the
    answer said "100 left, full now" for a request that had just taken one of 100."""
    client = await limited(per_second=50, burst=100)
    headers = await partner_headers(client, partner)
    for _ in range(6):
        response = await client.get(ORDERS, headers=headers)
        limit, remaining, reset = limit_headers(response)
        assert (response.status, limit) == (200, 100)
        assert remaining <= 99 and reset >= 1, (remaining, reset)
        await asyncio.sleep(0.1)  # 5 tokens of refill: a bucket that is full again


async def test_retry_after_is_when_a_token_is_there(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=2, burst=1)
    headers = await partner_headers(client, partner)
    assert (await client.get(ORDERS, headers=headers)).status == 200
    refused = await client.get(ORDERS, headers=headers)
    assert refused.status == 429
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await client.get(ORDERS, headers=headers)).status == 200


async def test_the_bucket_refills_at_its_rate_up_to_its_burst(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=10, burst=3)
    headers = await partner_headers(client, partner)
    statuses = [(await client.get(ORDERS, headers=headers)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    await asyncio.sleep(1.0)  # 10 tokens' worth of time, but the bucket holds 3
    statuses = [(await client.get(ORDERS, headers=headers)).status for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429


async def test_half_the_rate_after_the_burst_is_never_refused_across_processes(
    limited: MakeClient, partner: IssuedCredential
) -> None:
    rate, burst = 20.0, 10
    first, second = await limited(rate, burst), await limited(rate, burst)
    headers = await partner_headers(first, partner)
    for _ in range(burst):
        assert (await first.get(ORDERS, headers=headers)).status == 200
    started = time.monotonic()
    statuses = []
    for n in range(1, 31):  # half the rate, alternating between the two processes, for 3 seconds
        await asyncio.sleep(max(0.0, started + n / (rate / 2) - time.monotonic()))
        statuses.append((await (first if n % 2 else second).get(ORDERS, headers=headers)).status)
    assert statuses == [200] * 30


async def test_partners_are_independent(limited: MakeClient, partner: IssuedCredential, make_partner: Any,
                                        load: Any) -> None:
    other = await make_partner("P2")
    await load([reseller_record("R2", "P2"), customer_record("C2", "R2")])
    client = await limited(per_second=0.1, burst=2)
    mine, theirs = await partner_headers(client, partner), await partner_headers(client, other)
    assert [(await client.get(ORDERS, headers=mine)).status for _ in range(3)] == [200, 200, 429]
    response = await client.get("/v3/customers/C2/orders", headers=theirs)
    assert response.status == 200 and limit_headers(response)[1] == 1


async def test_credentials_of_one_partner_share_its_bucket(limited: MakeClient, partner: IssuedCredential,
                                                           db_url: str) -> None:
    issued = orjson.loads(cli(db_url, "credentials", "create", "P1").stdout)
    second = IssuedCredential(issued["partnerId"], issued["apiKey"], issued["clientSecret"])
    client = await limited(per_second=0.1, burst=2)
    assert (await client.get(ORDERS, headers=await partner_headers(client, partner))).status == 200
    assert (await client.get(ORDERS, headers=await partner_headers(client, second))).status == 200
    assert (await client.get(ORDERS, headers=await partner_headers(client, second))).status == 429


async def test_a_429_is_not_stored_for_replay(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=1, burst=1)
    headers = await partner_headers(client, partner)
    assert (await client.get(ORDERS, headers=headers)).status == 200
    headers["X-Correlation-Id"] = "place-once"
    refused = await client.post(ORDERS, json=BODY, headers=headers)
    assert refused.status == 429 and "Idempotent-Replayed" not in refused.headers
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    placed = await client.post(ORDERS, json=BODY, headers=headers)
    assert placed.status == 201, await placed.text()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v3/customers/C1/orders?limit=0", 400),
        ("GET", "/v3/customers/NOBODY/orders", 404),
        ("GET", "/v3/no-such-thing", 404),
        ("DELETE", ORDERS, 405),
        ("POST", ORDERS, 400),  # no body
    ],
)
async def test_every_answer_after_the_check_carries_the_headers(
    limited: MakeClient, partner: IssuedCredential, method: str, path: str, status: int
) -> None:
    client = await limited(per_second=1, burst=10)
    headers = await partner_headers(client, partner)
    response = await client.request(method, path, headers=headers)
    assert response.status == status
    assert limit_headers(response)[:2] == (10, 9)


async def test_answers_before_the_check_take_no_token(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=0.1, burst=1)
    headers = await partner_headers(client, partner)
    no_correlation = {k: v for k, v in headers.items() if k != "X-Correlation-Id"}
    for bad in (no_correlation, {**headers, "Authorization": "Bearer nope"}, {**headers, "X-Api-Key": "nope"}):
        response = await client.get(ORDERS, headers=bad)
        assert response.status in (400, 401, 403) and "RateLimit-Limit" not in response.headers
    assert (await client.get(ORDERS, headers=headers)).status == 200
    assert "RateLimit-Limit" not in (await client.get("/healthz")).headers


async def test_refusals_are_counted_in_metrics(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=0.1, burst=1)
    headers = await partner_headers(client, partner)
    for _ in range(3):
        await client.get(ORDERS, headers=headers)
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_rate_limited_total{limit="partner"} 2.0' in metrics


async def test_an_override_reaches_a_running_server_within_seconds(partner: IssuedCredential, db_url: str) -> None:
    credential = {"apiKey": partner.api_key, "clientSecret": partner.client_secret}
    with server_process(db_url) as base:  # the tests' servers run with a limit they never reach
        async with aiohttp.ClientSession(base) as http:
            headers = await process_headers(http, credential, "override")

            async def refused_within(seconds: float) -> bool:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    async with http.get(ORDERS, headers=headers) as response:
                        if response.status == 429:
                            return True
                    await asyncio.sleep(0.05)
                return False

            assert not await refused_within(0.5)
            cli(db_url, "partners", "set-rate-limit", "P1", "--per-second", "0.2", "--burst", "2")
            assert await refused_within(10)
            async with http.get(ORDERS, headers=headers) as response:
                assert response.headers["RateLimit-Limit"] == "2"
            cli(db_url, "partners", "set-rate-limit", "P1", "--default")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                async with http.get(ORDERS, headers=headers) as response:
                    if response.status == 200 and response.headers["RateLimit-Limit"] != "2":
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the default limit did not come back")


async def test_a_changed_limit_applies_from_the_change_on(limited: MakeClient, partner: IssuedCredential,
                                                         db_url: str) -> None:
    """Tokens earned before the change are kept: the first take after it refilled the whole time since the
    last one at the new rate, and a partner whose rate was lowered lost what it had earned."""
    cli(db_url, "partners", "set-rate-limit", "P1", "--per-second", "2", "--burst", "4")
    client = await limited(per_second=1000, burst=1000)  # the defaults, which P1's own limit replaces
    headers = await partner_headers(client, partner)
    assert [(await client.get(ORDERS, headers=headers)).status for _ in range(5)] == [200] * 4 + [429]
    await asyncio.sleep(1.0)  # 2 tokens earned, and more while the command starts
    cli(db_url, "partners", "set-rate-limit", "P1", "--per-second", "0.01", "--burst", "4")
    statuses = [(await client.get(ORDERS, headers=headers)).status for _ in range(5)]
    assert statuses.count(200) >= 2 and statuses[-1] == 429, statuses


def token_form(credential: IssuedCredential, secret: str | None = None) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": credential.api_key,
            "client_secret": credential.client_secret if secret is None else secret}


async def test_ten_failed_authentications_lock_out_that_client_id(client: TestClient,
                                                                  partner: IssuedCredential) -> None:
    for _ in range(10):
        response = await client.post("/ims/token/v3", data=token_form(partner, "wrong"))
        assert response.status == 401
    for form in (token_form(partner, "wrong"), token_form(partner)):  # the right secret too, from there
        refused = await client.post("/ims/token/v2", data=form)
        assert refused.status == 429
        assert (await refused.json())["error"] == "invalid_client"
        assert 55 <= int(refused.headers["Retry-After"]) <= 60
    other = IssuedCredential("P1", "another-client-id", "x")
    assert (await client.post("/ims/token/v3", data=token_form(other))).status == 401
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_rate_limited_total{limit="token"} 2.0' in metrics


@pytest.mark.parametrize("fields", [[("grant_type", "password")], [("grant_type", "client_credentials")] * 2,
                                    [("grant_type", "client_credentials"), ("client_secret", "s")]])
async def test_a_locked_out_client_id_is_refused_whatever_it_sends(client: TestClient, partner: IssuedCredential,
                                                                    fields: list[tuple[str, str]]) -> None:
    """Its grant type, or a parameter sent twice, was answered as if it were not locked out."""
    for _ in range(10):
        assert (await client.post("/ims/token/v3", data=token_form(partner, "wrong"))).status == 401
    for sent in ({"data": [*fields, ("client_id", partner.api_key)]},
                 {"data": fields, "params": {"client_id": partner.api_key}},
                 {"data": fields, "headers": {"Authorization": aiohttp.encode_basic_auth(partner.api_key, "wrong")}}):
        refused = await client.post("/ims/token/v3", **sent)
        assert refused.status == 429 and (await refused.json())["error"] == "invalid_client", sent


async def test_nine_failures_do_not_lock_out(client: TestClient, partner: IssuedCredential) -> None:
    for _ in range(9):
        assert (await client.post("/ims/token/v3", data=token_form(partner, "wrong"))).status == 401
    assert (await client.post("/ims/token/v3", data=token_form(partner))).status == 200
    # A success is not a failure: the tenth failure is the one that locks out.
    assert (await client.post("/ims/token/v3", data=token_form(partner, "wrong"))).status == 401
    assert (await client.post("/ims/token/v3", data=token_form(partner))).status == 429


async def test_two_processes_on_one_database_admit_within_the_bound(partner: IssuedCredential, db_url: str) -> None:
    rate, burst, seconds = 10.0, 20, 3.0
    cli(db_url, "partners", "set-rate-limit", "P1", "--per-second", str(rate), "--burst", str(burst))
    credential = {"apiKey": partner.api_key, "clientSecret": partner.client_secret}
    with server_process(db_url) as first, server_process(db_url) as second:
        async with aiohttp.ClientSession(first) as a, aiohttp.ClientSession(second) as b:
            headers = await process_headers(a, credential, "cluster-burst")
            statuses: list[int] = []
            started = time.monotonic()

            async def hammer(http: aiohttp.ClientSession) -> None:
                # As fast as one connection goes, for `seconds`, at most 2,000 requests.
                for _ in range(2000):
                    if time.monotonic() - started > seconds:
                        return
                    async with http.get(ORDERS, headers=headers) as response:
                        statuses.append(response.status)
                        assert response.status == 200 or int(response.headers["Retry-After"]) >= 1

            await asyncio.wait_for(asyncio.gather(*(hammer(http) for http in (a, b) for _ in range(4))), 60)
            elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert admitted <= (burst + rate * elapsed) * 1.1, (admitted, elapsed, len(statuses))
    assert admitted >= burst + rate * (elapsed - 1) * 0.5, (admitted, elapsed, len(statuses))


async def test_rate_limiting_off(limited: MakeClient, partner: IssuedCredential) -> None:
    client = await limited(per_second=0, burst=1)
    headers = await partner_headers(client, partner)
    for _ in range(5):
        response = await client.get(ORDERS, headers=headers)
        assert response.status == 200 and "RateLimit-Limit" not in response.headers


async def test_failures_sent_at_once_are_all_counted(client: TestClient, partner: IssuedCredential) -> None:
    answers = await asyncio.gather(*(client.post("/ims/token/v3", data=token_form(partner, "wrong"))
                                     for _ in range(30)))
    statuses = sorted(response.status for response in answers)
    assert statuses == [401] * 10 + [429] * 20


async def test_failures_are_counted_by_every_process_on_the_database(limited: MakeClient,
                                                                      partner: IssuedCredential) -> None:
    """Each process counted its own: with two, a client id had twenty tries a minute."""
    first, second = await limited(per_second=50, burst=100), await limited(per_second=50, burst=100)
    for client in (first, second) * 5:
        assert (await client.post("/ims/token/v3", data=token_form(partner, "wrong"))).status == 401
    for client in (first, second):
        refused = await client.post("/ims/token/v3", data=token_form(partner))
        assert refused.status == 429 and 55 <= int(refused.headers["Retry-After"]) <= 60
        assert (await refused.json())["error"] == "invalid_client"
    # Another client id is counted apart.
    other = IssuedCredential("P1", "another-client-id", "x")
    assert (await second.post("/ims/token/v3", data=token_form(other))).status == 401


async def test_failures_sent_at_once_to_two_processes_are_all_counted(limited: MakeClient,
                                                                     partner: IssuedCredential) -> None:
    """Each process checked the shared count before either had recorded a failure: 15 wrong secrets sent at
    once to each of two processes got twenty 401s. Attempts of one client id now take turns across them."""
    first, second = await limited(per_second=50, burst=100), await limited(per_second=50, burst=100)
    answers = await asyncio.gather(*(client.post("/ims/token/v3", data=token_form(partner, "wrong"))
                                     for client in (first, second) * 15))
    assert sorted(response.status for response in answers) == [401] * 10 + [429] * 20
