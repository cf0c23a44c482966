"""Webhooks: every event a webhook's partner sees, of its types, POSTed as the Standard Webhooks
specification describes, retried on the schedule, given up, disabled on 410, never redirected, and never
sent into the operator's own network unless allowed. Each test calls a receiver on loopback it starts
itself, with the guard relaxed by the settings unless the test is about the guard."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import os
import time
from typing import Any

import orjson
import pytest
import structlog.testing
from aiohttp.test_utils import TestClient
from conftest import cli, locked_elsewhere, partner_headers, raw_sql
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook as Verifier
from webhook_receiver import OK, Reply, receiver

from gateway.app import create_app
from gateway.settings import Settings
from partner_orders_client import verify_webhook

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


async def test_host_names_in_other_scripts_are_taken_as_the_connection_encodes_them(db_url: str,
                                                                                    partners: Any) -> None:
    """IDNA 2008, as aiohttp's URL parser encodes the name it connects to: Python's own codec (IDNA 2003)
    refused `ß`, which it maps to `ss`, and the `xn--` label that IDNA 2008 makes of it. A name IDNA 2008
    does not take (an emoji) the parser encodes with Python's codec, and so it is checked."""
    for url in ("https://straße.example/", "https://xn--strae-oqa.example/", "https://bücher.example/",
                "https://my_hooks.example/", "https://i❤.example/", "https://xn--i-7iq.example/"):
        assert add_webhook(db_url, "P1", url)["url"] == url


async def test_cli_refusals(db_url: str, partners: Any) -> None:
    refused = cli(db_url, "webhooks", "add", "P1", "http://hooks.example/", check=False)
    assert refused.returncode == 1 and "https://" in refused.stderr and refused.stdout == ""
    assert cli(db_url, "webhooks", "add", "P9", "https://hooks.example/", check=False).returncode == 1
    assert cli(db_url, "webhooks", "add", "P1", "https://user:pw@hooks.example/", check=False).returncode == 1
    for unreachable in ("https://a..b.example/", f"https://{'a' * 64}.example/", "https://xn--a.example/",
                        "https://-bad-.example/", "https://hooks.example:0/",
                        # Addresses in forms the connection refuses: only a.b.c.d is one.
                        "https://127.1/", "https://2130706433/", "https://0177.0.0.1/", "https://0x7f000001/"):
        refused = cli(db_url, "webhooks", "add", "P1", unreachable, check=False)
        assert refused.returncode == 1 and "cannot start" not in refused.stderr, (unreachable, refused.stderr)
        assert "host" in refused.stderr or "port" in refused.stderr
    # What the URL parser would drop or re-encode: the endpoint called was not the one listed.
    for unsendable in ("https://exa mple.example/", "https://hooks.example/a b", " https://hooks.example/",
                       "https://hooks.example/crlf\r\nX-Injected: yes", "https://hooks.example/\tx",
                       "https://hooks.example/?a=%ZZ", "https://hooks.example/%",
                       # An empty fragment, which the parser drops; a host in brackets that is no address.
                       "https://hooks.example/?q=1#", "https://[v1.x]/"):
        refused = cli(db_url, "webhooks", "add", "P1", unsendable, check=False)
        assert refused.returncode == 1 and refused.stdout == "", (unsendable, refused.stderr)
    assert cli(db_url, "webhooks", "add", "P1", "https://hooks.example/", "--type", "x", check=False).returncode == 2
    assert cli(db_url, "webhooks", "remove", "wh_missing", check=False).returncode == 1
    assert cli(db_url, "webhooks", "deliveries", "wh_missing", check=False).returncode == 1
    assert cli_lines(db_url, "webhooks", "list") == []



async def test_listing_an_unknown_partners_webhooks_fails_as_listing_its_credentials_does(
        db_url: str, partners: Any) -> None:
    webhooks, credentials = (cli(db_url, command, "list", "NOBODY", check=False)
                             for command in ("webhooks", "credentials"))
    assert (webhooks.returncode, webhooks.stdout, webhooks.stderr) == (1, "", credentials.stderr)
    assert len(webhooks.stderr.splitlines()) == 1 and "no partner 'NOBODY'" in webhooks.stderr
    known = cli(db_url, "webhooks", "list", "P2")  # a partner without webhooks has none to list: no failure
    assert known.returncode == 0 and known.stdout == ""


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
        assert verify_webhook(added["secret"], call.headers, call.body) == event  # the client library agrees
        assert call.path == "/orders" and call.headers["Content-Type"] == "application/json"
        assert call.headers["webhook-id"] == event["eventId"]
        assert before - 1 <= int(call.headers["webhook-timestamp"]) <= time.time() + 1
        assert event["orderId"] == order["orderId"] and event["type"] == "order.created"
        with pytest.raises(Exception):
            Verifier(added["secret"]).verify(call.body.replace(b"1002", b"1000"), call.headers)
        await counted(client, delivered=1)  # received, and recorded
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert [(a["eventId"], a["attempt"], a["result"], a["status"], a["nextAttempt"]) for a in attempts] == [
            (event["eventId"], 1, "delivered", 204, None)]
        assert await metric(client, "gateway_webhook_attempts_total", result="delivered") == 1


async def test_failures_are_retried_on_the_schedule_with_the_same_id(aiohttp_client: Any, settings: Settings,
                                                                    db_url: str, partners: Any) -> None:
    async with receiver(replying((500, {}, 0), (503, {}, 0))) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings)
        await place(client, partners["P1"])
        calls = await hook.wait_for(3)
        assert len({call.headers["webhook-id"] for call in calls}) == 1
        gaps = [later.arrived - earlier.arrived for earlier, later in zip(calls, calls[1:])]
        assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # the schedule: 0.3 s, then 0.6 s
        timestamps = [int(call.headers["webhook-timestamp"]) for call in calls]
        assert timestamps == sorted(timestamps)  # each attempt signed at its own time
        for call in calls:
            Verifier(added["secret"]).verify(call.body, call.headers)
        await counted(client, delivered=1)  # the third answer arrived; now it is recorded too
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert [(a["attempt"], a["result"], a["status"]) for a in attempts] == [
            (3, "delivered", 204), (2, "failed", 503), (1, "failed", 500)]
        assert attempts[1]["nextAttempt"] is not None and attempts[0]["nextAttempt"] is None
        assert await metric(client, "gateway_webhook_attempts_total", result="failed") == 2


@pytest.mark.parametrize(("schedule", "calls"), [("0.1,0.1", 3), ("none", 1)])
async def test_given_up_after_the_schedule_and_shown(aiohttp_client: Any, settings: Settings, db_url: str,
                                                     partners: Any, schedule: str, calls: int) -> None:
    async with receiver(lambda call: (500, {}, 0)) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, webhook_retry_schedule=schedule)
        await place(client, partners["P1"])
        await hook.wait_for(calls)
        await counted(client, given_up=1)
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"], "--limit", "2")
        expected = [(calls, "given_up", None), (calls - 1, "failed", attempts[-1]["nextAttempt"])][:calls]
        assert [(a["attempt"], a["result"], a["nextAttempt"]) for a in attempts] == expected
        await asyncio.sleep(0.5)
        assert len(hook.calls) == calls  # nothing more after giving up
        assert await metric(client, "gateway_webhook_oldest_pending_seconds") == 0


async def test_410_disables_the_webhook(aiohttp_client: Any, settings: Settings, db_url: str,
                                        partners: Any) -> None:
    async with receiver(lambda call: (410, {}, 0)) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings)
        await place(client, partners["P1"])
        await hook.wait_for(1)
        await counted(client, disabled=1)
        assert cli_lines(db_url, "webhooks", "list")[0]["disabled"] is not None
        await place(client, partners["P1"])
        await asyncio.sleep(0.5)
        assert len(hook.calls) == 1
        (attempt,) = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert (attempt["result"], attempt["status"], attempt["nextAttempt"]) == ("disabled", 410, None)


async def test_every_call_made_before_a_410_disabled_the_webhook_is_listed(aiohttp_client: Any, settings: Settings,
                                                                            db_url: str, partners: Any) -> None:
    """Calls in flight on the webhook's other lanes when a 410 disabled it were made: `deliveries` lists each
    (it listed the 410 alone, the others' outcomes found their deliveries dropped and were not recorded)."""
    # The first 410 comes late (the timeout is 1 s), so that the other lanes' calls are made meanwhile.
    async with receiver(lambda call: (410, {}, 0.8 if len(hook.calls) == 1 else 0.1)) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings)
        await asyncio.gather(*(place(client, partners["P1"]) for _ in range(6)))
        await counted(client, disabled=2)
        await asyncio.sleep(1.0)  # the last calls' outcomes are recorded
        calls = {call.headers["webhook-id"] for call in hook.calls}
        assert len(calls) == len(hook.calls) >= 2
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert {attempt["eventId"] for attempt in attempts} == calls
        assert all(attempt["status"] == 410 and attempt["nextAttempt"] is None for attempt in attempts)


async def test_redirects_are_not_followed(aiohttp_client: Any, settings: Settings, db_url: str,
                                          partners: Any) -> None:
    async with receiver(lambda call: (307, {"Location": "/elsewhere"}, 0) if call.path == "/hook" else OK) as hook:
        added = add_webhook(db_url, "P1", hook.url + "/hook")
        client = await gateway(aiohttp_client, settings)
        await place(client, partners["P1"])
        await hook.wait_for(2, "/hook")
        assert hook.at("/elsewhere") == []
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert {(a["result"], a["status"]) for a in attempts} == {("failed", 307)}


async def test_a_call_past_the_timeout_failed(aiohttp_client: Any, settings: Settings, db_url: str,
                                              partners: Any) -> None:
    async with receiver(replying((204, {}, 1.0))) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, webhook_timeout_seconds=0.3)
        await place(client, partners["P1"])
        first, second = await hook.wait_for(2)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        await counted(client, failed=1, delivered=1)
        latest, earliest = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert (earliest["result"], earliest["status"], earliest["error"]) == ("failed", None, "timeout")
        assert latest["result"] == "delivered"


async def test_types_and_partners_choose_what_is_delivered(aiohttp_client: Any, settings: Settings, db_url: str,
                                                           partners: Any) -> None:
    async with receiver() as hook:
        add_webhook(db_url, "P1", hook.url + "/status", "order.status_changed")
        add_webhook(db_url, "P1", hook.url + "/all")
        add_webhook(db_url, "P2", hook.url + "/other")
        client = await gateway(aiohttp_client, settings)
        order = await place(client, partners["P1"])
        await asyncio.to_thread(cli, db_url, "orders", "set-status", order["orderId"], "1000")
        (changed,) = await hook.wait_for(1, "/status")
        await hook.wait_for(2, "/all")
        assert orjson.loads(changed.body)["type"] == "order.status_changed"
        # Two lanes may deliver them at once: no order is promised.
        assert sorted(orjson.loads(call.body)["type"] for call in hook.at("/all")) == ["order.created",
                                                                                     "order.status_changed"]
        await place(client, partners["P2"], customer="C2")
        (other,) = await hook.wait_for(1, "/other")
        assert orjson.loads(other.body)["customerId"] == "C2"
        await asyncio.sleep(0.3)
        assert len(hook.at("/other")) == 1 and len(hook.at("/all")) == 2


async def test_a_dead_endpoints_backlog_holds_up_another_webhook_for_one_call_at_most(
        aiohttp_client: Any, settings: Settings, db_url: str, partners: Any) -> None:
    """Every slot taken by a dead endpoint's lanes (each call times out) with a backlog of 4 s: another
    partner's webhook got its event once the backlog was through. Now a lane makes way after its call."""
    async with receiver(lambda call: (204, {}, 3.0) if call.path == "/dead" else OK) as hook:
        add_webhook(db_url, "P1", f"{hook.url}/dead")
        add_webhook(db_url, "P2", f"{hook.url}/fast")
        client = await gateway(aiohttp_client, settings, webhook_concurrency=2, webhook_endpoint_concurrency=2,
                               webhook_timeout_seconds=0.5, webhook_retry_schedule="60")
        for _ in range(16):
            await place(client, partners["P1"])
        await hook.wait_for(2, "/dead")  # both slots are the dead endpoint's
        placed = time.monotonic()
        await place(client, partners["P2"], customer="C2")
        (fast,) = await hook.wait_for(1, "/fast", timeout=5.0)
        assert fast.arrived - placed < 1.5  # its calls take 0.5 s; its backlog, 16 x 0.5 s over 2 lanes, 4 s
        await hook.wait_for(16, "/dead")  # and the dead endpoint's lanes came back for the rest


async def test_a_secret_sealed_under_another_key_fails_its_attempts_and_says_so(
        aiohttp_client: Any, settings: Settings, db_url: str, partners: Any) -> None:
    """`webhooks add` without GATEWAY_WEBHOOK_SECRET_KEY, `serve` with one: the operator sees why in the
    attempts and in the server's log, and the endpoint is never called unsigned."""
    async with receiver() as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, webhook_secret_key="k" * 40)
        with structlog.testing.capture_logs() as logged:
            await place(client, partners["P1"])
            await counted(client, failed=1)
        (attempt,) = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert attempt["result"] == "failed" and "sealed under another key" in attempt["error"]
        assert {"event": "webhook_secret_unreadable", "webhook_id": added["webhookId"],
                "log_level": "warning"} in logged
        assert hook.calls == []


async def test_the_guard_refuses_loopback_unless_allowed(aiohttp_client: Any, settings: Settings,
                                                                   db_url: str, partners: Any) -> None:
    async with receiver() as hook:
        port = hook.url.rsplit(":", 1)[1]
        by_address = add_webhook(db_url, "P1", f"{hook.url}/address")
        by_name = add_webhook(db_url, "P1", f"http://localhost:{port}/name")
        mapped = add_webhook(db_url, "P1", f"http://[::ffff:127.0.0.1]:{port}/mapped")
        nat64 = add_webhook(db_url, "P1", f"http://[64:ff9b::7f00:1]:{port}/nat64")
        # SIIT's IPv4-translated form, and local-use NAT64, which the interpreter's tables call global.
        translated = add_webhook(db_url, "P1", f"http://[::ffff:0:7f00:1]:{port}/translated")
        local_nat64 = add_webhook(db_url, "P1", f"http://[64:ff9b:1::7f00:1]:{port}/local-nat64")
        client = await gateway(aiohttp_client, settings, webhook_allow_private=False)
        await place(client, partners["P1"])
        await counted(client, failed=6)
        for webhook in (by_address, by_name, mapped, nat64, translated, local_nat64):
            (attempt,) = cli_lines(db_url, "webhooks", "deliveries", webhook["webhookId"])
            assert attempt["result"] == "failed" and attempt["error"].startswith("refused: ")
            assert "non-public address" in attempt["error"]
        assert hook.calls == []


async def test_http_is_refused_unless_allowed(aiohttp_client: Any, settings: Settings, db_url: str,
                                              partners: Any) -> None:
    async with receiver() as hook:
        plain = add_webhook(db_url, "P1", f"{hook.url}/plain")
        client = await gateway(aiohttp_client, settings, webhook_allow_http=False)
        await place(client, partners["P1"])
        await counted(client, failed=1)
        assert "https://" in cli_lines(db_url, "webhooks", "deliveries", plain["webhookId"])[0]["error"]
        assert hook.at("/plain") == []


async def test_traceparent_is_logged_and_sent_on(aiohttp_client: Any, settings: Settings, db_url: str,
                                                 partners: Any) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with receiver() as hook:
        add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings)
        await place(client, partners["P1"], traceparent=f"00-{trace_id}-00f067aa0ba902b7-01")
        await place(client, partners["P1"], traceparent="00-not-a-trace")
        calls = await hook.wait_for(2)
        (traced,) = [call for call in calls if "traceparent" in call.headers]
        (untraced,) = [call for call in calls if call is not traced]
        version, sent_trace, parent, flags = traced.headers["traceparent"].split("-")
        assert (version, sent_trace, flags) == ("00", trace_id, "01") and parent != "00f067aa0ba902b7"
        assert "traceparent" not in untraced.headers


async def test_removing_a_webhook_drops_its_deliveries(aiohttp_client: Any, settings: Settings, db_url: str,
                                                      partners: Any) -> None:
    async with receiver(lambda call: (500, {}, 0)) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, webhook_retry_schedule="0.5,0.5,0.5")
        await place(client, partners["P1"])
        await hook.wait_for(1)
        # Off the event loop: the gateway's delivery lane, on this loop, may hold the webhook's row mid-transaction
        # and must go on to release it (a blocked loop left the command waiting past its busy timeout).
        await asyncio.to_thread(cli, db_url, "webhooks", "remove", added["webhookId"])
        calls = len(hook.calls)
        await asyncio.sleep(1.2)
        assert len(hook.calls) == calls and cli_lines(db_url, "webhooks", "list") == []


async def counted(client: TestClient, timeout: float = 10.0, **results: int) -> None:
    """Waits until the gateway counted at least this many attempts of each result."""
    deadline = time.monotonic() + timeout
    for result, count in results.items():
        while await metric(client, "gateway_webhook_attempts_total", result=result) < count:
            assert time.monotonic() < deadline, f"fewer than {count} {result} attempts in time"
            await asyncio.sleep(0.05)


async def test_an_event_a_delivery_waits_for_outlives_its_retention(aiohttp_client: Any, settings: Settings,
                                                                   db_url: str, partners: Any) -> None:
    """Purging expired events spares one (and every later one) that a delivery still needs; once delivered,
    it goes like the others."""
    answering = {"status": 500}
    async with receiver(lambda call: (answering["status"], {}, 0)) as hook:
        add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, webhook_retry_schedule="0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
                               idempotency_purge_interval_seconds=0.2, event_retention_seconds=60)
        order = await place(client, partners["P1"])
        await hook.wait_for(1)
        raw_sql(db_url, f"UPDATE order_events SET created = created - 3600 WHERE order_id = '{order['orderId']}'")
        await asyncio.sleep(1.0)  # five purges
        assert [event["orderId"] for event in await feed(client, partners["P1"])] == [order["orderId"]]
        answering["status"] = 204
        await counted(client, delivered=1)
        deadline = time.monotonic() + 10
        while await feed(client, partners["P1"]):
            assert time.monotonic() < deadline, "the delivered event was never purged"
            await asyncio.sleep(0.2)


async def _hold_deliveries(db_url: str, seconds: float) -> None:
    """Another process's lock on the deliveries, for `seconds`: no outcome can be recorded meanwhile."""
    async with locked_elsewhere(db_url, "webhook_deliveries"):
        await asyncio.sleep(seconds)


async def test_an_outcome_the_database_cannot_take_at_once_is_recorded_later(aiohttp_client: Any, settings: Settings,
                                                                             db_url: str, partners: Any) -> None:
    """An acknowledged call whose outcome meets a database busy past its timeout is recorded once it can be,
    within the claim's lease: it used to be dropped, and the event delivered again when the lease ran out
    (a duplicate without a timeout or a crash)."""
    holds: list[asyncio.Task[None]] = []

    def answer(call: Any) -> Reply:
        if not holds:
            holds.append(asyncio.get_running_loop().create_task(_hold_deliveries(db_url, 1.2)))
        return (204, {}, 0.3)  # the lock is taken while the answer waits

    async with receiver(answer) as hook:
        added = add_webhook(db_url, "P1", hook.url)
        client = await gateway(aiohttp_client, settings, db_busy_timeout_seconds=0.3)
        await place(client, partners["P1"])
        await hook.wait_for(1)
        await counted(client, timeout=4.0, delivered=1)  # before the lease (6 s) could run out
        await holds[0]
        attempts = cli_lines(db_url, "webhooks", "deliveries", added["webhookId"])
        assert [(a["attempt"], a["result"]) for a in attempts] == [(1, "delivered")]
        assert len(hook.calls) == 1


async def test_a_lost_attempt_recorded_while_its_webhook_is_removed_fails_nothing(db_url: str, partners: Any) -> None:
    """An attempt whose delivery is gone is still listed, unless its webhook is gone too. A removal not yet
    committed is waited for, then nothing is inserted; the insert's key check used to fail the lane's whole
    transaction (its next claim included) once the removal committed."""
    if db_url.startswith("sqlite://"):
        pytest.skip("SQLite's writers are one at a time: no removal can be in progress meanwhile")
    import asyncpg
    from gateway.storage import Attempt, Delivery, open_storage

    added = add_webhook(db_url, "P1", "https://hooks.example/")
    now = int(time.time() * 1000)
    lost = Attempt(Delivery(added["webhookId"], "event-1", 1, "claim-a"), now, "delivered", 204, None, None)
    async with open_storage(db_url) as storage:
        remover = await asyncpg.connect(db_url)
        try:
            async with remover.transaction():
                await remover.execute("DELETE FROM webhooks WHERE webhook_id = $1", added["webhookId"])
                recording = asyncio.create_task(
                    storage.record_and_claim(lost, added["webhookId"], now, now + 15_000, "claim-b", 1))
                await asyncio.sleep(0.3)
                assert not recording.done()  # waits for the removal
            assert await recording == (False, [])
        finally:
            await remover.close()
