"""The client's retries, through a proxy in front of a real gateway: a write whose answer is lost is sent
again with the same correlation id and creates one order; Retry-After is waited for; retries are bounded;
a refused token is renewed once; errors arrive as ApiError."""
from __future__ import annotations

import datetime
import email.utils
import pickle
import time
import traceback
import uuid
from pathlib import Path

import pytest

from client_support import FAST, Gateway, Proxy, WRITES, gateway, new_order, proxy  # gateway, proxy: fixtures used by name
from partner_orders_client import ApiError, Client, NetworkError, RetryPolicy


def orders_with_reference(gateway: Gateway, reference: str) -> list[str]:
    with gateway.client() as direct:
        return [order["orderId"] for order in direct.history(WRITES, external_reference_id=reference)]


def test_a_post_whose_answer_is_lost_is_sent_again_with_its_correlation_id_and_creates_one_order(
    gateway: Gateway, proxy: tuple[Proxy, str]
) -> None:
    scripted, url = proxy
    scripted.drop_after_forwarding("POST")
    with gateway.client(url, retry=FAST) as client:
        placed = client.place_order(WRITES, new_order("dropped-1"))
    posts = scripted.requests("POST")
    assert [seen.status for seen in posts] == [None, 201]  # executed, answer lost; then the stored answer
    assert posts[0].headers["X-Correlation-Id"] == posts[1].headers["X-Correlation-Id"]
    assert orders_with_reference(gateway, "dropped-1") == [placed["orderId"]]


def test_a_post_answered_after_the_timeout_is_replayed_not_placed_twice(
    gateway: Gateway, proxy: tuple[Proxy, str]
) -> None:
    scripted, url = proxy
    scripted.delay_after_forwarding("POST", 1.0)
    with gateway.client(url, retry=FAST, timeout=0.3) as client:
        placed = client.place_order(WRITES, new_order("slow-1"), correlation_id="caller-key-slow-1")
    assert {seen.headers["X-Correlation-Id"] for seen in scripted.requests("POST")} == {"caller-key-slow-1"}
    assert orders_with_reference(gateway, "slow-1") == [placed["orderId"]]


@pytest.mark.parametrize(("status", "code"), [(503, "503"), (429, "4118")])
def test_retry_after_is_waited_for_and_the_same_correlation_id_sent_again(
    gateway: Gateway, proxy: tuple[Proxy, str], status: int, code: str
) -> None:
    scripted, url = proxy
    scripted.refuse(1, status, code, retry_after="1", method="POST")
    with gateway.client(url, retry=FAST) as client:
        placed = client.place_order(WRITES, new_order(f"after-{status}"))
    first, second = scripted.requests("POST")
    assert second.at - first.at >= 1.0
    assert first.headers["X-Correlation-Id"] == second.headers["X-Correlation-Id"]
    assert orders_with_reference(gateway, f"after-{status}") == [placed["orderId"]]


def test_retry_after_as_an_http_date_is_waited_for(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    """A proxy or load balancer in front of the gateway may say when to come back as a date (RFC 9110)."""
    scripted, url = proxy
    # A whole second three seconds on: the date keeps it exactly, so at least 2 s minus the first hop are left
    now = datetime.datetime.now(datetime.timezone.utc)
    later = now.replace(microsecond=0) + datetime.timedelta(seconds=3)
    scripted.refuse(1, 503, "503", retry_after=email.utils.format_datetime(later, usegmt=True))
    with gateway.client(url, retry=FAST) as client, pytest.raises(ApiError):
        client.get_order(WRITES, "0000000000")
    first, second = scripted.requests("GET")[:2]
    assert second.at - first.at >= 1.0


@pytest.mark.parametrize("value", ["Mon, 01 Jan 99999999999999999999 00:00:00 GMT", "soon", ""])
def test_a_retry_after_that_is_no_time_is_ignored(gateway: Gateway, proxy: tuple[Proxy, str], value: str) -> None:
    """An unreadable Retry-After (a year no clock reaches was an OverflowError) leaves the backoff alone, and
    the answer still ends as ApiError."""
    scripted, url = proxy
    scripted.refuse(10, 503, "503", retry_after=value)
    with gateway.client(url, retry=RetryPolicy(max_retries=1, base_delay=0.01)) as client:
        with pytest.raises(ApiError) as refused:
            client.get_order(WRITES, "0000000000")
    assert (refused.value.status, refused.value.code) == (503, "503")


def test_a_correlation_id_still_executing_is_retried(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.refuse(2, 409, "4122", retry_after="0", method="PATCH")
    with gateway.client(url, retry=FAST) as client:
        placed = client.place_order(WRITES, new_order("patched-1"))
        updated = client.update_order(WRITES, placed["orderId"], external_reference_id="patched-2")
    assert updated["externalReferenceId"] == "patched-2"
    assert len({seen.headers["X-Correlation-Id"] for seen in scripted.requests("PATCH")}) == 1
    assert len(scripted.requests("PATCH")) == 3


@pytest.mark.parametrize("correlation_id", ["", " ", " lead", "trail ", "a\nb", "a\tb", "é-ü", "x" * 256])
def test_a_correlation_id_no_attempt_could_send_is_refused_before_sending(
        gateway: Gateway, proxy: tuple[Proxy, str], correlation_id: str) -> None:
    """It was retried as "no answer" six times over, raised as a UnicodeEncodeError, or (empty) replaced by a
    new id, which no retry of the caller's would share."""
    scripted, url = proxy
    with gateway.client(url, retry=FAST) as client:
        with pytest.raises(ValueError, match="correlation_id"):
            client.place_order(WRITES, new_order("never-sent"), correlation_id=correlation_id)
        assert client.place_order(WRITES, new_order("sent"), correlation_id="a b-" + "x" * 251)["orderId"]
    assert len(scripted.requests("POST")) == 1


def test_retries_are_bounded_and_end_with_the_last_error(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.refuse(10, 503, "503", retry_after="0")
    with gateway.client(url, retry=RetryPolicy(max_retries=2, base_delay=0.01)) as client:
        with pytest.raises(ApiError) as refused:
            client.get_order(WRITES, "0000000000")
    assert (refused.value.status, refused.value.code) == (503, "503")
    assert len(scripted.requests("GET")) == 3


def test_a_retry_after_longer_than_the_policy_allows_is_not_waited_for(
    gateway: Gateway, proxy: tuple[Proxy, str]
) -> None:
    scripted, url = proxy
    scripted.refuse(1, 429, "4118", retry_after="3600")
    started = time.monotonic()
    with gateway.client(url, retry=FAST) as client, pytest.raises(ApiError) as refused:
        client.get_order(WRITES, "0000000000")
    assert refused.value.code == "4118" and time.monotonic() - started < 5


def test_no_answer_at_all_ends_in_network_error_after_the_retries(gateway: Gateway) -> None:
    from conftest import free_port

    with Client(f"http://127.0.0.1:{free_port()}", gateway.api_key, gateway.client_secret, retry=FAST) as client:
        with pytest.raises(NetworkError) as failed:
            client.get_order(WRITES, "0000000000")
    assert failed.value.attempts == FAST.max_retries + 1


def test_a_refused_token_is_renewed_once_and_the_call_retried(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    with gateway.client(url, retry=FAST) as client:
        client.place_order(WRITES, new_order("token-1"))
        scripted.refuse(1, 401, "4116", method="POST")
        client.place_order(WRITES, new_order("token-2"))
        assert len(scripted.requests("POST", "/ims/token")) == 2
        scripted.refuse(2, 401, "4116", method="POST")
        with pytest.raises(ApiError) as refused:
            client.place_order(WRITES, new_order("token-3"))
    assert (refused.value.status, refused.value.code) == (401, "4116")
    assert len(scripted.requests("POST", "/ims/token")) == 3  # one renewal per call, not a loop


def test_a_token_is_renewed_before_it_expires(gateway: Gateway, proxy: tuple[Proxy, str]) -> None:
    scripted, url = proxy
    scripted.token_lifetime = 2.0  # renewed halfway (after 1 s): a lifetime shorter than twice the margin
    with gateway.client(url, retry=FAST) as client:
        client.get_order(WRITES, client.place_order(WRITES, new_order("short-token"))["orderId"])
        assert len(scripted.requests("POST", "/ims/token")) == 1
        time.sleep(1.1)
        client.history(WRITES, limit=1).__next__()
    assert len(scripted.requests("POST", "/ims/token")) == 2
    assert all(seen.status != 401 for seen in scripted.seen)


def test_a_refusal_is_an_api_error_with_the_bodys_fields_and_not_retried(
    gateway: Gateway, proxy: tuple[Proxy, str]
) -> None:
    scripted, url = proxy
    order = {"orderType": "NEW", "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 0}]}
    with gateway.client(url, retry=FAST) as client, pytest.raises(ApiError) as refused:
        client.place_order(WRITES, order)
    error = refused.value
    assert (error.status, error.code) == (400, "2120")
    assert error.message == "quantity must be an integer of at least 1"
    assert error.invalid_fields == ["quantity", "currencyCode"]
    assert error.additional_details == [
        "Line Item: 1, Reason: quantity must be an integer of at least 1",
        "Line Item: 1, Reason: currencyCode is required on the order or on every line",
    ]
    assert uuid.UUID(str(error.request_id))  # the gateway's id of the request, for its operators
    assert len(scripted.requests("POST")) == 1


def test_wrong_credentials_are_an_api_error_of_the_token_endpoint(gateway: Gateway) -> None:
    with Client(gateway.url, gateway.api_key, "not-the-secret", retry=FAST) as client:
        with pytest.raises(ApiError) as refused:
            client.get_order(WRITES, "0000000000")
    assert (refused.value.status, refused.value.code) == (401, "invalid_client")
    # A traceback that shows local variables (error trackers record them) holds the requests sent: neither
    # the secret nor a header value is in their repr.
    shown = "".join(traceback.TracebackException.from_exception(refused.value, capture_locals=True).format())
    assert "Request(method='POST', target='/ims/token/v3')" in shown and "not-the-secret" not in shown


def test_errors_are_picklable(gateway: Gateway) -> None:
    """Integrations hand errors to other processes (multiprocessing, task queues): unpickling raised a
    TypeError, for constructor arguments that are not the exceptions' `args`."""
    from conftest import free_port

    with gateway.client(retry=FAST) as client, pytest.raises(ApiError) as refused:
        client.get_order(WRITES, "0000000000")
    copy = pickle.loads(pickle.dumps(refused.value))
    assert (type(copy), str(copy), copy.status, copy.code, copy.message, copy.additional_details,
            copy.invalid_fields, copy.request_id) == (
        ApiError, str(refused.value), 404, "2115", refused.value.message, refused.value.additional_details,
        refused.value.invalid_fields, refused.value.request_id)
    with Client(f"http://127.0.0.1:{free_port()}", "key", "secret", retry=FAST) as offline:
        with pytest.raises(NetworkError) as failed:
            offline.get_order(WRITES, "0000000000")
    copy = pickle.loads(pickle.dumps(failed.value))
    assert (type(copy), str(copy), copy.attempts) == (NetworkError, str(failed.value), failed.value.attempts)
