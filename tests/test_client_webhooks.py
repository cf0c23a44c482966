"""verify_webhook: a delivery signed as the Standard Webhooks specification says is accepted and parsed;
a wrong secret, a changed body, a stale or future timestamp and missing headers are refused."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from partner_orders_client import WebhookVerificationError, verify_webhook

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef01234567").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret, 24 bytes").decode()
EVENT = {"eventId": "evt_1", "type": "order.created", "orderId": "5120008001", "order": {"status": "1002"}}
BODY = json.dumps(EVENT).encode()
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)


def signed(body: bytes = BODY, *, secret: str = SECRET, at: datetime = NOW, event_id: str = "evt_1") -> dict[str, str]:
    signature = Webhook(secret).sign(event_id, at, body.decode())
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def test_a_signed_delivery_is_the_event() -> None:
    assert verify_webhook(SECRET, signed(), BODY, now=NOW) == EVENT
    assert verify_webhook(SECRET, signed(), BODY.decode(), now=NOW + timedelta(minutes=4)) == EVENT


def test_header_names_are_case_insensitive_and_other_signatures_are_skipped() -> None:
    headers = {name.title(): value for name, value in signed().items()}
    headers["Webhook-Signature"] = f"v1a,ignored v1,bm90LXRoaXM= {headers['Webhook-Signature']}"
    assert verify_webhook(SECRET, headers, BODY, now=NOW) == EVENT


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook(SECRET, signed(secret=OTHER_SECRET), BODY, now=NOW)


def test_a_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b"1002", b"1000")
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook(SECRET, signed(), tampered, now=NOW)


def test_a_signature_of_another_delivery_id_is_refused() -> None:
    headers = {**signed(), "webhook-id": "evt_2"}
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("written", ["000{}", "+{}", " {}", "{} ", "\u0661\u0667"])
def test_a_timestamp_written_otherwise_than_unix_seconds_is_refused(written: str) -> None:
    """int() reads `000<now>`, and other scripts' digits: the signature was checked over the number as
    written again, not over the header's text."""
    headers = signed()
    headers["webhook-timestamp"] = written.format(headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError, match="not Unix seconds"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("headers", [signed(), {**signed(), "webhook-timestamp": "12x"}, {}])
def test_a_naive_now_is_the_callers_error(headers: dict[str, str]) -> None:
    """Whatever the delivery: it was a ValueError for a good timestamp only."""
    with pytest.raises(ValueError, match="aware"):
        verify_webhook(SECRET, headers, BODY, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_timestamp_is_refused(offset: timedelta) -> None:
    with pytest.raises(WebhookVerificationError, match="from now"):
        verify_webhook(SECRET, signed(at=NOW + offset), BODY, now=NOW)


def test_the_tolerance_is_the_receivers_choice() -> None:
    late = signed(at=NOW - timedelta(seconds=90))
    assert verify_webhook(SECRET, late, BODY, now=NOW, tolerance=timedelta(minutes=2)) == EVENT
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, late, BODY, now=NOW, tolerance=timedelta(seconds=60))


def test_without_now_the_current_time_is_used() -> None:
    current = datetime.now(timezone.utc)
    assert verify_webhook(SECRET, signed(at=current), BODY) == EVENT
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, signed(at=current - timedelta(hours=1)), BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = signed()
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("stamp", ["1764410400.5", "-1", "soon", "9" * 30])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(stamp: str) -> None:
    with pytest.raises(WebhookVerificationError, match="webhook-timestamp"):
        verify_webhook(SECRET, {**signed(), "webhook-timestamp": stamp}, BODY, now=NOW)


def test_a_malformed_signature_is_refused_not_crashed_on() -> None:
    for garbage in ["v1,***", "v1", "", "v2,abc"]:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(SECRET, {**signed(), "webhook-signature": garbage}, BODY, now=NOW)


def test_a_secret_that_is_not_one_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not a webhook secret"):
        verify_webhook("whsec_", signed(), BODY, now=NOW)


@pytest.mark.parametrize("body", [b"not json", b'{"eventId": "evt_1"', b"[" * 100_000], ids=["text", "cut", "deep"])
def test_a_signed_body_that_is_not_json_is_refused_not_crashed_on(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError, match="not JSON"):
        verify_webhook(SECRET, signed(body), body, now=NOW)
