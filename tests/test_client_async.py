"""AsyncClient does what Client does, against the same kind of gateway and proxy: the same retries, the same
correlation ids, the same pages, the same feed positions."""
from __future__ import annotations

import asyncio
import time

import pytest

from client_support import FAST, Gateway, Proxy, READS, WRITES, gateway, new_order, proxy  # gateway, proxy: fixtures used by name
from partner_orders_client import ApiError, NetworkError


async def test_a_post_whose_answer_is_lost_is_sent_again_and_creates_one_order(
    gateway: Gateway, proxy: tuple[Proxy, str]
) -> None:
    scripted, url = proxy
    scripted.drop_after_forwarding("POST")
    async with gateway.async_client(url, retry=FAST) as client:
        placed = await client.place_order(WRITES, new_order("async-dropped"))
        found = [order["orderId"] async for order in client.history(WRITES, external_reference_id="async-dropped")]
    posts = scripted.requests("POST")
    assert [seen.status for seen in posts] == [None, 201]
    assert posts[0].headers["X-Correlation-Id"] == posts[1].headers["X-Correlation-Id"]
    assert found == [placed["orderId"]]


async def test_retry_after_is_waited_for(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.refuse(1, 429, "4118", retry_after="1", method="PATCH")
    async with gateway.async_client(url, retry=FAST) as client:
        placed = await client.place_order(WRITES, new_order("async-patch"))
        started = time.monotonic()
        updated = await client.update_order(WRITES, placed["orderId"], external_reference_id="async-patched",
                                            correlation_id="async-patch-key")
    assert time.monotonic() - started >= 1.0 and updated["externalReferenceId"] == "async-patched"
    assert [seen.headers["X-Correlation-Id"] for seen in scripted.requests("PATCH")] == ["async-patch-key"] * 2


async def test_retries_are_bounded(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.refuse(10, 502, "502")
    async with gateway.async_client(url, retry=FAST) as client:
        with pytest.raises(ApiError) as refused:
            await client.get_order(READS, "H001")
    assert refused.value.status == 502 and len(scripted.requests("GET")) == FAST.max_retries + 1


async def test_no_answer_at_all_ends_in_network_error(gateway: Gateway) -> None:
    from conftest import free_port

    async with gateway.async_client(f"http://127.0.0.1:{free_port()}", retry=FAST) as client:
        with pytest.raises(NetworkError):
            await client.get_order(READS, "H001")


async def test_a_refused_token_is_renewed_once(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.refuse(1, 401, "4116", method="GET")
    async with gateway.async_client(url, retry=FAST) as client:
        order = await client.get_order(READS, "H001")
    assert order["orderId"] == "H001"
    assert len(scripted.requests("POST", "/ims/token")) == 2


async def test_history_is_what_the_sync_client_iterates(gateway: Gateway) -> None:
    with gateway.client() as sync:
        expected = list(sync.history(READS, status=["1000", "1004"], limit=4))
    async with gateway.async_client() as client:
        assert [order async for order in client.history(READS, status=["1000", "1004"], limit=4)] == expected
    assert len(expected) > 4


async def test_conditional_reads_answer_not_modified(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        order = await client.fetch_order(READS, "H002")
        again = await client.fetch_order(READS, "H002", if_none_match=f"W/{order.etag}")
        page = await client.fetch_history_page(READS, limit=3)
        page_again = await client.fetch_history_page(READS, if_none_match=page.etag, limit=3)
    assert order.body is not None and order.body["orderId"] == "H002"
    assert again.not_modified and again.etag == order.etag
    assert page.body is not None and page_again.not_modified


async def test_the_feed_resumes_from_events_cursor(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        everything = [event async for event in client.events(customer_id=READS)]
        seen = []
        async for event in client.events(customer_id=READS, limit=6):
            seen.append(event)
            if len(seen) == 9:
                break
        assert "." in str(client.events_cursor)
        seen += [event async for event in client.events(client.events_cursor, customer_id=READS, limit=6)]
    assert len(everything) == 31 and seen == everything


async def test_following_the_feed_sees_an_order_placed_meanwhile(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        [event async for event in client.events(customer_id=WRITES)]
        followed = client.events(client.events_cursor, follow=True, poll_interval=0.05, customer_id=WRITES)
        waiting = asyncio.create_task(anext(followed))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # nothing new yet: still polling
        placed = await client.place_order(WRITES, new_order("async-follow"))
        event = await asyncio.wait_for(waiting, timeout=10)
    assert (event["type"], event["orderId"]) == ("order.created", placed["orderId"])
