"""The change feed (GET /v3/order-events): an event in the transaction of every change, partner-scoped,
followed by cursors, filtered, kept for the retention."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from conftest import TEST_SIGNING_KEY, UNLIMITED, cli, customer_record, order_record, partner_headers, raw_sql
from conftest import reseller_record

from gateway.app import create_app
from gateway.settings import Settings
from schemas.events import EventPageSchema

FEED = "/v3/order-events"
ORDERS = "/v3/customers/C1/orders"
NOW = datetime.now(timezone.utc)
_keys = itertools.count(1)


def zulu(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_order(**fields: Any) -> dict[str, Any]:
    return {"orderType": "NEW", "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 2}], **fields}


async def headers(client: TestClient, credential: Any) -> dict[str, str]:
    sent = await partner_headers(client, credential)
    sent["X-Correlation-Id"] = f"feed-{next(_keys)}"
    return sent


async def place(client: TestClient, credential: Any, customer: str = "C1", **fields: Any) -> dict[str, Any]:
    response = await client.post(f"/v3/customers/{customer}/orders", json=new_order(**fields),
                                 headers=await headers(client, credential))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def read(client: TestClient, credential: Any, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{FEED}{query}", headers=await headers(client, credential))
    assert response.status == 200, await response.text()
    page = dict(await response.json())
    assert not EventPageSchema().validate(page)
    return page


async def everything(client: TestClient, credential: Any, query: str = "") -> list[dict[str, Any]]:
    """Every event from the start, following links.next until an empty page."""
    events: list[dict[str, Any]] = []
    page = await read(client, credential, query)
    while page["items"]:
        events.extend(page["items"])
        page = await read(client, credential, "?" + urlsplit(page["links"]["next"]["uri"]).query)
    return events


async def test_placing_an_order_writes_order_created(client: TestClient, partners: dict[str, Any]) -> None:
    placed = await place(client, partners["P1"])
    page = await read(client, partners["P1"])
    assert page["count"] == 1 and page["limit"] == 25
    event = page["items"][0]
    assert set(event) == {"eventId", "type", "createdDate", "customerId", "orderId", "status", "order"}
    assert (event["type"], event["customerId"], event["orderId"], event["status"]) == (
        "order.created", "C1", placed["orderId"], "1002")
    assert event["order"] == placed
    created = datetime.strptime(event["createdDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((created - datetime.now(timezone.utc)).total_seconds()) < 5


async def test_a_patch_writes_order_updated_and_a_replay_writes_nothing(client: TestClient,
                                                                       partners: dict[str, Any]) -> None:
    placed = await place(client, partners["P1"])
    path = f"{ORDERS}/{placed['orderId']}"
    sent = await headers(client, partners["P1"])
    for _ in range(2):  # the second is a replay
        assert (await client.patch(path, json={"externalReferenceId": "PO-7"}, headers=sent)).status == 200
    same = await headers(client, partners["P1"])  # a new key, the value it has already: nothing changes
    assert (await client.patch(path, json={"externalReferenceId": "PO-7"}, headers=same)).status == 200
    events = await everything(client, partners["P1"])
    assert [e["type"] for e in events] == ["order.created", "order.updated"]
    assert "previousStatus" not in events[1] and events[1]["order"]["externalReferenceId"] == "PO-7"


async def test_set_status_and_a_completed_return_write_status_changes(client: TestClient,
                                                                     partners: dict[str, Any],
                                                                     db_url: str) -> None:
    original = await place(client, partners["P1"])
    cli(db_url, "orders", "set-status", original["orderId"], "1000")
    returned = await place(client, partners["P1"], orderType="RETURN", referenceOrderId=original["orderId"])
    cli(db_url, "orders", "set-status", returned["orderId"], "1000")
    cli(db_url, "orders", "set-status", returned["orderId"], "1000")  # as it is: no event
    events = await everything(client, partners["P1"])
    summary = [(e["type"], e["orderId"], e.get("previousStatus"), e["status"]) for e in events]
    assert summary == [
        ("order.created", original["orderId"], None, "1002"),
        ("order.status_changed", original["orderId"], "1002", "1000"),
        ("order.created", returned["orderId"], None, "1002"),
        ("order.status_changed", returned["orderId"], "1002", "1000"),
        # The completed RETURN gave back every line of the original: its lines are cancelled.
        ("order.status_changed", original["orderId"], "1000", "1000"),
    ]
    assert events[1]["order"]["lineItems"][0]["subscriptionId"]
    assert events[-1]["order"]["lineItems"][0]["status"] == "1008"


async def test_import_writes_events_for_what_it_inserts_or_changes(client: TestClient, partners: dict[str, Any],
                                                                   load: Any, db_url: str, tmp_path: Any) -> None:
    first = order_record("5000000001", "C1", zulu(NOW - timedelta(days=1)), status="1002")
    second = order_record("5000000002", "C1", zulu(NOW - timedelta(days=2)))
    await load([first, second])
    await load([first, second])  # unchanged: nothing
    await load([{**first, "status": "1000"}, {**second, "externalReferenceId": "X-1"}])
    # Both at once: an event of each type, so that a reader of either one hears of it (only the first was).
    await load([{**first, "status": "1004", "externalReferenceId": "X-2"}])
    data = tmp_path / "quiet.jsonl"
    data.write_text(json.dumps(order_record("5000000003", "C1", zulu(NOW))) + "\n")
    cli(db_url, "import", "--no-events", str(data))
    events = await everything(client, partners["P1"])
    assert [(e["type"], e["orderId"]) for e in events] == [
        ("order.created", "5000000001"), ("order.created", "5000000002"),
        ("order.status_changed", "5000000001"), ("order.updated", "5000000002"),
        ("order.status_changed", "5000000001"), ("order.updated", "5000000001"),
    ]
    assert events[-2]["previousStatus"] == "1000" and "previousStatus" not in events[-1]
    assert events[-1]["order"] == events[-2]["order"] and events[-1]["order"]["externalReferenceId"] == "X-2"
    history = await client.get(ORDERS, headers=await headers(client, partners["P1"]))
    assert (await history.json())["totalCount"] == 3  # the quiet import did write its order


async def test_cursors_resume_and_repeat(client: TestClient, partners: dict[str, Any]) -> None:
    placed = [await place(client, partners["P1"]) for _ in range(5)]
    first = await read(client, partners["P1"], "?limit=2")
    assert [e["orderId"] for e in first["items"]] == [o["orderId"] for o in placed[:2]]
    second = await read(client, partners["P1"], f"?limit=2&cursor={first['cursor']}")
    assert [e["orderId"] for e in second["items"]] == [o["orderId"] for o in placed[2:4]]
    again = await read(client, partners["P1"], f"?cursor={first['cursor']}&limit=2")
    assert again["items"] == second["items"] and again["cursor"] == second["cursor"]
    rest = await read(client, partners["P1"], "?" + urlsplit(second["links"]["next"]["uri"]).query)
    assert [e["orderId"] for e in rest["items"]] == [placed[4]["orderId"]]
    empty = await read(client, partners["P1"], f"?cursor={rest['cursor']}")
    assert empty["items"] == [] and empty["count"] == 0 and empty["cursor"] == rest["cursor"]
    late = await place(client, partners["P1"])  # polling with the same cursor finds what came since
    assert [e["orderId"] for e in (await read(client, partners["P1"], f"?cursor={rest['cursor']}"))["items"]] == [
        late["orderId"]]


async def test_cursors_outlive_a_change_of_the_token_signing_key(aiohttp_client: Any, client: TestClient,
                                                                  partners: dict[str, Any], db_url: str) -> None:
    """Cursors are signed with the database's own key: a gateway restarted with another GATEWAY_JWT_SECRET
    takes the cursors clients saved (they were 1132, "not a cursor of this feed"). The cursors of earlier
    releases, signed with a key derived from the token signing key, are taken while that key is the same."""
    placed = [await place(client, partners["P1"]) for _ in range(3)]
    saved = (await read(client, partners["P1"], "?limit=1"))["cursor"]
    raw = base64.urlsafe_b64decode(saved + "=" * (-len(saved) % 4))[:8]  # the first event's number
    former = hmac.new(TEST_SIGNING_KEY.encode(), b"order-events cursor", hashlib.sha256).digest()
    legacy = base64.urlsafe_b64encode(raw + hmac.new(former, b"P1\x1f" + raw, hashlib.sha256).digest()[:12])
    rotated = await aiohttp_client(create_app(Settings(**UNLIMITED, database_url=db_url, jwt_secret="another-" * 5,
                                                       credential_cache_seconds=0)))
    # The saved cursor on the gateway with another signing key; the earlier release's on one with its key.
    for gateway, cursor in ((rotated, saved), (client, legacy.rstrip(b"=").decode())):
        page = await read(gateway, partners["P1"], f"?cursor={cursor}")
        assert [event["orderId"] for event in page["items"]] == [order["orderId"] for order in placed[1:]]


async def test_links_carry_the_other_parameters_once(client: TestClient, partners: dict[str, Any]) -> None:
    await place(client, partners["P1"])
    page = await read(client, partners["P1"], "?type=order.created&customer-id=C1&limit=500")
    assert page["limit"] == 100
    for name, link in page["links"].items():
        assert link["method"] == "GET" and link["headers"] == []
        params = parse_qsl(urlsplit(link["uri"]).query)
        assert urlsplit(link["uri"]).path == FEED
        assert [p for p in params if p[0] not in ("cursor", "limit")] == [("type", "order.created"),
                                                                          ("customer-id", "C1")]
        assert ("limit", "100") in params
    assert ("cursor", page["cursor"]) in parse_qsl(urlsplit(page["links"]["next"]["uri"]).query)
    assert "cursor" not in dict(parse_qsl(urlsplit(page["links"]["self"]["uri"]).query))


async def test_filters_by_customer_and_type(client: TestClient, partners: dict[str, Any], load: Any,
                                            db_url: str) -> None:
    await load([customer_record("C3", "R1")])
    one = await place(client, partners["P1"])
    other = await place(client, partners["P1"], customer="C3")
    cli(db_url, "orders", "set-status", one["orderId"], "1004")
    by_customer = await everything(client, partners["P1"], "?customer-id=C3")
    assert [e["orderId"] for e in by_customer] == [other["orderId"]]
    both = await everything(client, partners["P1"], "?customer-id=C3&customer-id=C1")
    assert len(both) == 3
    changed = await everything(client, partners["P1"], "?type=order.status_changed")
    assert [(e["orderId"], e["status"]) for e in changed] == [(one["orderId"], "1004")]


async def test_partners_see_only_their_own_events(client: TestClient, partners: dict[str, Any],
                                                  load: Any) -> None:
    mine = await place(client, partners["P1"])
    theirs = await place(client, partners["P2"], customer="C2")
    # An order of P1's customer placed through P2's reseller: neither partner sees it, nor its event.
    await load([order_record("5000000009", "C1", zulu(NOW), reseller_id="R2")])
    assert [e["orderId"] for e in await everything(client, partners["P1"])] == [mine["orderId"]]
    assert [e["orderId"] for e in await everything(client, partners["P2"])] == [theirs["orderId"]]
    # P1's cursor is not P2's.
    cursor = (await read(client, partners["P1"]))["cursor"]
    response = await client.get(f"{FEED}?cursor={cursor}", headers=await headers(client, partners["P2"]))
    body = await response.json()
    assert response.status == 400 and body["code"] == "1132" and body["invalidFields"] == ["cursor"]


async def test_a_value_that_is_not_utf8_is_1132(client: TestClient, partners: dict[str, Any]) -> None:
    response = await client.get(f"{FEED}?customer-id=%FFC1", headers=await headers(client, partners["P1"]))
    body = await response.json()
    assert response.status == 400 and body["code"] == "1132" and body["invalidFields"] == ["customer-id"]


async def test_only_a_cursor_as_issued_is_one(client: TestClient, partners: dict[str, Any]) -> None:
    await place(client, partners["P1"])
    cursor = (await read(client, partners["P1"]))["cursor"]
    # The same bytes spelled otherwise: a character outside the alphabet, padding.
    for other in (cursor[:5] + "$$" + cursor[5:], cursor + "==", cursor + "="):
        response = await client.get(FEED, params={"cursor": other}, headers=await headers(client, partners["P1"]))
        body = await response.json()
        assert response.status == 400 and body["invalidFields"] == ["cursor"], other
    assert (await read(client, partners["P1"], f"?cursor={cursor}"))["cursor"] == cursor


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("?cursor=nonsense", ["cursor"]),
        ("?cursor=", ["cursor"]),
        ("?limit=0", ["limit"]),
        ("?limit=x", ["limit"]),
        ("?type=order.deleted", ["type"]),
        ("?offset=3", ["offset"]),
        ("?limit=5&limit=6", ["limit"]),
        ("?customer-id=" + "C" * 65, ["customer-id"]),
    ],
)
async def test_bad_queries_are_1132(client: TestClient, partners: dict[str, Any], query: str,
                                    fields: list[str]) -> None:
    response = await client.get(FEED + query, headers=await headers(client, partners["P1"]))
    body = await response.json()
    assert response.status == 400 and body["code"] == "1132" and body["invalidFields"] == fields


async def test_the_feed_answers_the_checks_of_every_v3_path(client: TestClient, partners: dict[str, Any]) -> None:
    sent = await headers(client, partners["P1"])
    assert (await client.get(FEED, headers={k: v for k, v in sent.items() if k != "X-Api-Key"})).status == 403
    assert (await client.get(FEED, headers={k: v for k, v in sent.items() if k != "Authorization"})).status == 401
    assert (await client.get(FEED, headers={**sent, "X-Correlation-Id": ""})).status == 400
    assert (await client.post(FEED, headers=sent)).status == 405


@pytest.fixture
def purging_settings(db_url: str) -> Settings:
    return Settings(**UNLIMITED, database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                    idempotency_purge_interval_seconds=0.2, event_retention_seconds=60)


async def test_expired_events_are_purged_and_old_cursors_are_410(aiohttp_client: Any, purging_settings: Settings,
                                                                 partners: dict[str, Any], db_url: str) -> None:
    client = await aiohttp_client(create_app(purging_settings))
    old = await place(client, partners["P1"])
    start = (await read(client, partners["P1"], "?limit=1"))["cursor"]  # after the old event
    before_all = (await read(client, partners["P1"], "?customer-id=NONE"))["cursor"]  # before it
    kept = await place(client, partners["P1"])
    raw_sql(db_url, f"UPDATE order_events SET created = created - 3600 WHERE order_id = '{old['orderId']}'")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = await everything(client, partners["P1"])
        if [e["orderId"] for e in events] == [kept["orderId"]]:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the expired event was not purged")
    assert [e["orderId"] for e in (await read(client, partners["P1"], f"?cursor={start}"))["items"]] == [
        kept["orderId"]]
    gone = await client.get(f"{FEED}?cursor={before_all}", headers=await headers(client, partners["P1"]))
    assert gone.status == 410 and (await gone.json())["code"] == "4124"


async def test_another_partners_purged_events_leave_a_cursor_valid(aiohttp_client: Any, purging_settings: Settings,
                                                                   partners: dict[str, Any], db_url: str) -> None:
    client = await aiohttp_client(create_app(purging_settings))
    await place(client, partners["P2"], customer="C2")
    idle = (await read(client, partners["P2"]))["cursor"]  # P2 has read everything, and goes quiet
    others = await place(client, partners["P1"])
    raw_sql(db_url, f"UPDATE order_events SET created = created - 3600 WHERE order_id = '{others['orderId']}'")
    deadline = time.monotonic() + 10
    while await everything(client, partners["P1"]):
        assert time.monotonic() < deadline, "the expired event was not purged"
        await asyncio.sleep(0.2)
    polled = await read(client, partners["P2"], f"?cursor={idle}")  # not 410: none of P2's events is gone
    assert polled["items"] == [] and polled["cursor"] == idle


# -- conditional GETs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ORDERS, "{order}", FEED])
async def test_conditional_gets_answer_304_until_the_body_changes(client: TestClient, partners: dict[str, Any],
                                                                  path: str) -> None:
    placed = await place(client, partners["P1"])
    path = path.format(order=f"{ORDERS}/{placed['orderId']}")
    sent = await headers(client, partners["P1"])
    full = await client.get(path, headers=sent)
    tag = full.headers["ETag"]
    assert full.status == 200 and tag.startswith('"') and full.headers["Cache-Control"] == "private, no-cache"
    two_lines = CIMultiDict([*sent.items(), ("If-None-Match", '"other"'), ("If-None-Match", tag)])  # one list
    for if_none_match in (tag, f"W/{tag}", f'"other", {tag}', "*", '"other", *', None):  # lists the tag or *
        again = await client.get(path, headers={**sent, "If-None-Match": if_none_match} if if_none_match else two_lines)
        assert again.status == 304 and await again.read() == b""
        assert again.headers["ETag"] == tag and again.headers["X-Request-Id"]
        assert again.headers["Cache-Control"] == "private, no-cache" and "RateLimit-Remaining" in again.headers
    # A comma in quotes is the tag's own; a value that is no list of tags lists none (`W/` is case-sensitive).
    for other in ('"other"', '"a,*,b"', f'"x,{tag[1:]}', "garbage", f"{tag}x", f"{tag} x", f'{tag}"', f"w/{tag}"):
        assert (await client.get(path, headers={**sent, "If-None-Match": other})).status == 200, other
    patched = await client.patch(f"{ORDERS}/{placed['orderId']}", json={"externalReferenceId": "changed"},
                                 headers=await headers(client, partners["P1"]))
    assert patched.status == 200
    changed = await client.get(path, headers={**sent, "If-None-Match": tag})
    assert changed.status == 200 and changed.headers["ETag"] != tag


async def test_a_304_takes_a_token(limited_client: TestClient, partners: dict[str, Any]) -> None:
    sent = await headers(limited_client, partners["P1"])
    first = await limited_client.get(FEED, headers=sent)
    tag, remaining = first.headers["ETag"], int(first.headers["RateLimit-Remaining"])
    again = await limited_client.get(FEED, headers={**sent, "If-None-Match": tag})
    assert again.status == 304 and int(again.headers["RateLimit-Remaining"]) == remaining - 1


@pytest.fixture
async def limited_client(aiohttp_client: Any, db_url: str) -> TestClient:
    settings = Settings(database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                        rate_limit_per_second=0.1, rate_limit_burst=10)
    return await aiohttp_client(create_app(settings))


async def test_events_follow_their_orders_to_the_partner_that_sees_them(client: TestClient,
                                                                       partners: dict[str, Any],
                                                                       load: Any) -> None:
    placed = await place(client, partners["P1"])
    await load([reseller_record("R1", "P2")])  # P1's reseller, and with it customer C1, moves to P2
    assert await everything(client, partners["P1"]) == []
    moved = await everything(client, partners["P2"])
    assert [(e["type"], e["orderId"]) for e in moved] == [("order.created", placed["orderId"])]


async def test_events_of_an_order_moved_to_another_customer_follow_it(client: TestClient,
                                                                      partners: dict[str, Any],
                                                                      load: Any) -> None:
    await load([reseller_record("R3", "P1"), customer_record("C3", "R3")])
    order = order_record("5000000010", "C1", zulu(NOW), reseller_id="R3")
    await load([order])
    await load([{**order, "customerId": "C3"}])  # the order moves to C3 (still P1's)
    await load([reseller_record("R3", "P2")])  # then C3's reseller, the order's too, moves to P2
    assert await everything(client, partners["P1"]) == []
    assert {e["orderId"] for e in await everything(client, partners["P2"])} == {"5000000010"}


async def test_the_changes_of_an_order_no_partner_sees_reach_the_partner_that_comes_to_see_it(
        client: TestClient, partners: dict[str, Any], load: Any, db_url: str) -> None:
    """Such an order's changes wrote no event at all: a partner that came to see it found its order in the
    history and details, and nothing of it, or a stale status, in the feed."""
    hidden = order_record("5000000020", "C1", zulu(NOW), status="1002", reseller_id="R2")  # P1's customer, P2's reseller
    await load([hidden])
    cli(db_url, "orders", "set-status", "5000000020", "1000")
    assert await everything(client, partners["P1"]) == [] and await everything(client, partners["P2"]) == []
    await load([reseller_record("R2", "P1")])  # now P1 sees it
    events = await everything(client, partners["P1"], "?customer-id=C1")
    assert [(e["type"], e["orderId"], e["status"]) for e in events] == [
        ("order.created", "5000000020", "1002"), ("order.status_changed", "5000000020", "1000")]


async def test_an_imports_events_come_in_file_order_between_other_writes(client: TestClient,
                                                                         partners: dict[str, Any],
                                                                         load: Any) -> None:
    before = await place(client, partners["P1"])
    cursor = (await read(client, partners["P1"]))["cursor"]
    ids = [f"50000000{n:02d}" for n in range(12, 0, -1)]  # not in id order: the file's order is what counts
    await load([order_record(order_id, "C1", zulu(NOW - timedelta(hours=1))) for order_id in ids])
    after = await place(client, partners["P1"])
    events = await everything(client, partners["P1"])
    assert [e["orderId"] for e in events] == [before["orderId"], *ids, after["orderId"]]
    resumed = await everything(client, partners["P1"], f"?cursor={cursor}&limit=5")
    assert [e["orderId"] for e in resumed] == [*ids, after["orderId"]]


async def test_links_encode_the_parameters_once(client: TestClient, partners: dict[str, Any]) -> None:
    page = await read(client, partners["P1"], "?customer-id=A%20B%26C&limit=2")
    for link in page["links"].values():
        query = urlsplit(link["uri"]).query
        assert "customer-id=A+B%26C" in query and "%25" not in query
        assert ("customer-id", "A B&C") in parse_qsl(query)
