"""The client's reads against a real gateway: history iterated equals history paged by hand, conditional
reads answered 304, and the change feed iterated, stopped anywhere and resumed without a gap or a repeat."""
from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import raw_sql, seed_with_cli, server_process
from client_support import FAST, Gateway, Proxy, READS, WRITES, gateway, new_order  # gateway: a fixture used by name
from partner_orders_client import ApiError, Client, HistoryFilters, UnexpectedAnswer


def by_hand(gateway: Gateway, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Pages of history read with offsets, counted against the totalCount and the limit each page applied."""
    with httpx.Client(base_url=gateway.url) as http:
        form = {"grant_type": "client_credentials", "client_id": gateway.api_key,
                "client_secret": gateway.client_secret}
        token = http.post("/ims/token/v3", data=form).json()["access_token"]
        headers = {"X-Api-Key": gateway.api_key, "Authorization": f"Bearer {token}"}
        items: list[dict[str, Any]] = []
        offset, total = 0, None
        while total is None or offset < total:
            page = http.get(path, params=[*params, ("offset", str(offset))],
                            headers={**headers, "X-Correlation-Id": str(uuid.uuid4())}).json()
            items.extend(page["items"])
            offset, total = offset + page["limit"], page["totalCount"]
        return items


HISTORY_FILTERS: list[tuple[HistoryFilters, list[tuple[str, str]]]] = [
    ({"limit": 4}, [("limit", "4")]),
    ({"status": ["1000", "1002"], "limit": 3}, [("status", "1000"), ("status", "1002"), ("limit", "3")]),
    ({"order_type": "RENEWAL", "offer_id": ["OFFER-B"]}, [("order-type", "RENEWAL"), ("offer-id", "OFFER-B")]),
    ({"subscription_id": ["SUB-1", "SUB-3"], "reseller_id": "R1", "limit": 2},
     [("subscription-id", "SUB-1"), ("subscription-id", "SUB-3"), ("reseller-id", "R1"), ("limit", "2")]),
    ({"start_date": date(2025, 2, 1), "end_date": datetime(2025, 5, 11, 8, tzinfo=timezone.utc), "limit": 5},
     [("start-date", "2025-02-01"), ("end-date", "2025-05-11T08:00:00Z"), ("limit", "5")]),
    # Half a second after two orders: sent with its fraction, the bound leaves them out.
    ({"start_date": datetime(2025, 5, 11, 8, 0, 0, 500000, tzinfo=timezone.utc)},
     [("start-date", "2025-05-11T08:00:00.500000Z")]),
    ({"limit": 500, "fetch_price": True}, [("limit", "500"), ("fetch-price", "true")]),  # 100 applied
]


@pytest.mark.parametrize(("filters", "params"), HISTORY_FILTERS)
def test_history_iterates_what_paging_by_hand_reads(
    gateway: Gateway, filters: HistoryFilters, params: list[tuple[str, str]]
) -> None:
    expected = by_hand(gateway, f"/v3/customers/{READS}/orders", params)
    with gateway.client() as client:
        assert list(client.history(READS, **filters)) == expected
    assert expected  # each filter matches something: an empty match would compare nothing


def test_history_pages_follow_the_gateways_links(gateway: Gateway) -> None:
    scripted = Proxy(gateway.url)
    with scripted.serving() as url, gateway.client(url) as client:
        orders = list(client.history(READS, status="1000", limit=3))
    pages = [seen.target for seen in scripted.requests("GET")]
    assert len(pages) == -(-len(orders) // 3)
    assert pages[1:] == [f"/v3/customers/{READS}/orders?status=1000&offset={n}&limit=3" for n in range(3, len(orders), 3)]


def test_an_unknown_filter_is_refused_before_anything_is_sent(gateway: Gateway) -> None:
    with gateway.client() as client, pytest.raises(TypeError, match="statuses"):
        list(client.history(READS, statuses=["1000"]))  # type: ignore[call-arg]


def test_an_order_read_again_with_its_etag_is_not_modified_until_it_changes(gateway: Gateway) -> None:
    with gateway.client() as client:
        placed = client.place_order(WRITES, new_order("etag-1"))
        first = client.fetch_order(WRITES, placed["orderId"])
        again = client.fetch_order(WRITES, placed["orderId"], if_none_match=first.etag)
        client.update_order(WRITES, placed["orderId"], external_reference_id="etag-2")
        changed = client.fetch_order(WRITES, placed["orderId"], if_none_match=first.etag)
    assert first.body == placed and first.etag and not first.not_modified
    assert again.not_modified and again.body is None and again.etag == first.etag
    assert changed.body is not None and changed.body["externalReferenceId"] == "etag-2"
    assert changed.etag != first.etag


def test_a_history_page_read_again_with_its_etag_is_not_modified(gateway: Gateway) -> None:
    with gateway.client() as client:
        page = client.fetch_history_page(READS, offset=2, status="1000", limit=2)
        again = client.fetch_history_page(READS, offset=2, if_none_match=page.etag, status="1000", limit=2)
        other = client.fetch_history_page(READS, offset=4, if_none_match=page.etag, status="1000", limit=2)
    assert page.body is not None and page.body["offset"] == 2 and len(page.body["items"]) == 2
    assert again.not_modified and again.etag == page.etag
    assert other.body is not None and other.body["offset"] == 4


def feed_of(gateway: Gateway, customer_id: str) -> list[dict[str, Any]]:
    with gateway.client() as client:
        return list(client.events(customer_id=customer_id, limit=100))


@pytest.mark.parametrize("stop_after", [1, 7, 10, 20])
def test_the_feed_resumes_from_events_cursor_without_a_gap_or_a_repeat(gateway: Gateway, stop_after: int) -> None:
    everything = feed_of(gateway, READS)
    with gateway.client() as client:
        seen = list(islice(client.events(customer_id=READS, limit=7), stop_after))
        resume_at = client.events_cursor
        seen += list(client.events(resume_at, customer_id=READS, limit=5))
        assert client.events_cursor is not None and "." not in client.events_cursor  # a page's end: the gateway's own
    assert len(everything) == 31 and seen == everything
    # Pages of 1 (the first, from no cursor), then 7: within one, the events handed out are counted.
    assert ("." in str(resume_at)) == ((stop_after - 1) % 7 != 0)


def test_a_position_taken_before_any_cursor_survives_the_purge_of_older_events(tmp_path: Path) -> None:
    """Counted from "the oldest event kept" (as it once was), the position skipped an event once the oldest
    was purged, and the feed resumed at its end."""
    db_url = f"sqlite:///{tmp_path}/gateway.db"
    partner = seed_with_cli(db_url, tmp_path)
    purging = ("--idempotency-purge-interval-seconds", "0.2", "--event-retention-seconds", "60")
    with server_process(db_url, *purging) as url, Client(url, partner["apiKey"], partner["clientSecret"]) as client:
        placed = [client.place_order("C1", new_order(f"purged-{n}"))["orderId"] for n in range(3)]
        assert [event["orderId"] for event in islice(client.events(limit=10), 2)] == placed[:2]
        resume_at = client.events_cursor
        raw_sql(db_url, f"UPDATE order_events SET created = created - 3600 WHERE order_id = '{placed[0]}'")
        deadline = time.monotonic() + 10
        while next(iter(client.events(limit=1)))["orderId"] == placed[0]:
            assert time.monotonic() < deadline, "the expired event was not purged"
            time.sleep(0.2)
        assert [event["orderId"] for event in client.events(resume_at)] == placed[2:]


def test_the_feed_ends_at_its_current_end_and_a_cursor_there_yields_nothing_new(gateway: Gateway) -> None:
    with gateway.client() as client:
        assert len(list(client.events(customer_id=READS, event_type="order.created"))) == 31
        end = client.events_cursor
        assert list(client.events(end, customer_id=READS)) == []
        assert client.events_cursor == end


def test_following_the_feed_waits_for_new_events(gateway: Gateway) -> None:
    with gateway.client() as client:
        list(client.events(customer_id=WRITES))
        end = client.events_cursor
        placed = client.place_order(WRITES, new_order("feed-follow"))
        followed = client.events(end, follow=True, poll_interval=0.05, customer_id=WRITES)
        event = next(followed)
        assert (event["type"], event["orderId"]) == ("order.created", placed["orderId"])
        client.update_order(WRITES, placed["orderId"], external_reference_id="feed-follow-2")
        assert next(followed)["type"] == "order.updated"  # found by a later poll of the same iteration


def test_a_cursor_too_old_is_an_api_error_4124(gateway: Gateway) -> None:
    scripted = Proxy(gateway.url)
    scripted.refuse(1, 410, "4124", prefix="/v3/order-events")
    with scripted.serving() as url, gateway.client(url, retry=FAST) as client:
        with pytest.raises(ApiError) as gone:
            list(client.events("AAAAAAAAAAAAAAAAAAAAAAAAAAA"))
    assert (gone.value.status, gone.value.code) == (410, "4124")


@pytest.mark.parametrize("customer_id", ["..", ".", "a/b"])
def test_ids_are_sent_whole_whatever_they_hold(gateway: Gateway, customer_id: str) -> None:
    """An id is one path segment: `..` was resolved away as a step up (GET /v3/orders/orders, answered 404
    `404`), where the gateway answers the customer's absence, `1116`."""
    with gateway.client(retry=FAST) as client, pytest.raises(ApiError) as unknown:
        client.get_order(customer_id, "orders")
    assert (unknown.value.status, unknown.value.code) == (404, "1116")


def test_a_next_link_to_another_host_is_not_followed() -> None:
    """The credentials go only to the base URL: a page whose links.next names another host is an error."""
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.path.startswith("/ims/token"):
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        page = {"totalCount": 2, "count": 1, "offset": 0, "limit": 1, "items": [{"orderId": "1"}],
                "links": {"self": {"uri": "/v3/customers/C/orders"},
                          "next": {"uri": "https://elsewhere.example/v3/customers/C/orders?offset=1"}}}
        return httpx.Response(200, json=page)

    with Client("https://gateway.example", "key", "secret", transport=httpx.MockTransport(answer)) as client:
        orders = client.history("C")
        assert next(orders) == {"orderId": "1"}
        with pytest.raises(UnexpectedAnswer, match="root-relative"):
            next(orders)
    assert set(hosts) == {"gateway.example"}


def test_a_next_link_back_to_a_page_already_read_ends_the_history() -> None:
    """Something other than the gateway, repeating a page's link as its next, was followed for ever."""
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/ims/token"):
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        requests.append(str(request.url))
        page = {"totalCount": 2, "count": 1, "offset": 0, "limit": 1, "items": [{"orderId": "1"}],
                "links": {"self": {"uri": "/v3/customers/C/orders?offset=1&limit=1"},
                          "next": {"uri": "/v3/customers/C/orders?offset=1&limit=1"}}}
        return httpx.Response(200, json=page)

    with Client("https://gateway.example", "key", "secret", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(UnexpectedAnswer, match="already read"):
            list(client.history("C"))
    assert len(requests) == 2


def test_an_empty_cursor_reads_from_the_oldest_event_kept(gateway: Gateway) -> None:
    """A store's empty default was sent as `cursor=`, which the gateway refuses (400 1132)."""
    with gateway.client() as client:
        assert list(client.events("", customer_id=READS)) == list(client.events(customer_id=READS))
