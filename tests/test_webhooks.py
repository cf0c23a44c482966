"""Webhooks: every event a webhook's partner sees, of its types, POSTed as the Standard Webhooks
specification describes, retried on the schedule, given up, disabled on 410, never redirected, and never
sent into the operator's own network unless allowed. Each test calls a receiver on loopback it starts
itself, with the guard relaxed by the settings unless the test is about the guard."""
from __future__ import annotations

import base64
import dataclasses
import itertools
import os
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from conftest import cli, customer_record, partner_headers, reseller_record
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook as Verifier
from webhook_receiver import OK, Call, Receiver, Reply, receiver

from gateway.app import create_app
from gateway.settings import Settings

ALLOW = {**os.environ, "GATEWAY_WEBHOOK_ALLOW_HTTP": "true"}
RELAXED: dict[str, Any] = {
    "webhook_allow_http": True, "webhook_allow_private": True, "webhook_retry_schedule": "0.3,0.6",
    "webhook_timeout_seconds": 1.0, "webhook_poll_seconds": 0.2,
}
_keys = itertools.count(1)


def add_webhook(db_url: str, partner_id: str, url: str, *types: str) -> dict[str, Any]:
    args = [arg for kind in types for arg in ("--type", kind)]
    return dict(orjson.loads(cli(db_url, "webhooks", "add", partner_id, url, *args, env=ALLOW).stdout))


def cli_lines(db_url: str, *args: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in cli(db_url, *args).stdout.splitlines()]


@pytest.fixture
async def partners(make_partner: Any, load: Any) -> dict[str, Any]:
    """P1 (customer C1) and P2 (customer C2)."""
    first, second = await make_partner("P1"), await make_partner("P2")
    await load([reseller_record("R1", "P1"), reseller_record("R2", "P2"),
                customer_record("C1", "R1"), customer_record("C2", "R2")])
    return {"P1": first, "P2": second}


async def gateway(aiohttp_client: Any, settings: Settings, **changes: Any) -> TestClient:
    return await aiohttp_client(create_app(dataclasses.replace(settings, **{**RELAXED, **changes})))


async def place(client: TestClient, credential: Any, customer: str = "C1", **headers: str) -> dict[str, Any]:
    sent = {**await partner_headers(client, credential), "X-Correlation-Id": f"wh-{next(_keys)}", **headers}
    body = {"orderType": "NEW", "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}
    response = await client.post(f"/v3/customers/{customer}/orders", json=body, headers=sent)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def feed(client: TestClient, credential: Any) -> list[dict[str, Any]]:
    response = await client.get("/v3/order-events?limit=100", headers=await partner_headers(client, credential))
    return list((await response.json())["items"])


async def metric(client: TestClient, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def replying(*replies: Reply) -> Any:
    """Answers the calls in turn with `replies`, then 204."""
    queue = list(replies)
    return lambda call: queue.pop(0) if queue else OK


async def test_add_prints_the_secret_once_and_list_never(db_url: str, partners: Any) -> None:
    added = add_webhook(db_url, "P1", "https://hooks.example/orders", "order.created", "order.updated")
    assert set(added) == {"webhookId", "partnerId", "url", "types", "secret"}
    assert (added["partnerId"], added["url"]) == ("P1", "https://hooks.example/orders")
    assert added["types"] == ["order.created", "order.updated"]
    assert added["secret"].startswith("whsec_") and len(base64.b64decode(added["secret"][6:])) >= 24
    other = add_webhook(db_url, "P2", "https://hooks.example/other")
    assert other["types"] == [] and other["secret"] != added["secret"]
    listed = cli_lines(db_url, "webhooks", "list")
    assert [line["webhookId"] for line in listed] == [added["webhookId"], other["webhookId"]]
    assert all("secret" not in line and added["secret"] not in orjson.dumps(line).decode() for line in listed)
    assert [line["webhookId"] for line in cli_lines(db_url, "webhooks", "list", "P2")] == [other["webhookId"]]
    raw = cli(db_url, "webhooks", "list").stdout + "".join(
        str(row) for row in cli_lines(db_url, "webhooks", "deliveries", added["webhookId"]))
    assert added["secret"][6:] not in raw


async def test_cli_refusals(db_url: str, partners: Any) -> None:
    refused = cli(db_url, "webhooks", "add", "P1", "http://hooks.example/", check=False)
    assert refused.returncode == 1 and "https://" in refused.stderr and refused.stdout == ""
    assert cli(db_url, "webhooks", "add", "P9", "https://hooks.example/", check=False).returncode == 1
    assert cli(db_url, "webhooks", "add", "P1", "https://user:pw@hooks.example/", check=False).returncode == 1
    assert cli(db_url, "webhooks", "add", "P1", "https://hooks.example/", "--type", "x", check=False).returncode == 2
    assert cli(db_url, "webhooks", "remove", "wh_missing", check=False).returncode == 1
    assert cli(db_url, "webhooks", "deliveries", "wh_missing", check=False).returncode == 1
    assert cli_lines(db_url, "webhooks", "list") == []


async def test_a_delivery_is_signed_as_standard_webhooks_says(aiohttp_client: Any, settings: Settings,
                                                             db_url: str, partners: Any) -> None:
    async with receiver() as hook:
        added = add_webhook(db_url, "P1", hook.url + "/orders")
        client = await gateway(aiohttp_client, settings)
        before = time.time()
        order = await place(client, partners["P1"])
        (call,) = await hook.wait_for(1)
        event = (await feed(client, partners["P1"]))[0]
        assert Verifier(added["secret"]).verify(call.body, call.headers) == event
        assert call.path == "/orders" and call.headers["Content-Type"] == "application/json"
        assert call.headers["webhook-id"] == event["eventId"]
        assert before - 1 <= int(call.headers["webhook-timestamp"]) <= time.time() + 1
        assert event["orderId"] == order["orderId"] and event["type"] == "order.created"
        with pytest.raises(Exception):
            Verifier(added["secret"]).verify(call.body.replace(b"1002", b"1000"), call.headers)
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert [(a["eventId"], a["attempt"], a["result"], a["status"], a["nextAttempt"]) for a in attempts] == [
            (event["eventId"], 1, "delivered", 204, None)]
        assert await metric(client, "gateway_webhook_attempts_total", result="delivered") == 1
