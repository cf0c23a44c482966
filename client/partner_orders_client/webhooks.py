"""Verifying the gateway's webhook deliveries (Standard Webhooks).

The signature is computed by the `standardwebhooks` package (its secret decoding and HMAC), but checked
here: its own `verify` fixes the timestamp tolerance at five minutes and fails with a bare `ValueError` on a
malformed signature list, while a receiver needs a tolerance of its choosing and one exception to catch.
"""
from __future__ import annotations

import base64
import contextlib
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from partner_orders_client.errors import WebhookVerificationError

DEFAULT_TOLERANCE = timedelta(minutes=5)  # how far a delivery's timestamp may be from the receiver's clock
SIGNATURE_VERSION = "v1"  # HMAC-SHA256; other versions in the header are skipped, as the standard says


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The delivered event, once its signature and timestamp are checked; raises WebhookVerificationError
    otherwise. Pass the body exactly as received (before any JSON parsing): the signature covers its bytes.

    A timestamp more than `tolerance` away from `now` (default: the current time) in either direction is
    refused, so that a captured delivery cannot be replayed later. Deduplicate accepted deliveries by their
    `webhook-id` (the event's id): a delivery may come more than once.
    """
    if now is not None and now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id, stamp, signatures = (lowered.get(f"webhook-{name}", "") for name in ("id", "timestamp", "signature"))
    if not (message_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    sent_at = _timestamp(stamp, tolerance, now or datetime.now(timezone.utc))
    text = _text(body)
    expected = _signature_bytes(_signer(secret).sign(message_id, sent_at, text))
    if not any(hmac.compare_digest(expected, offered) for offered in _offered(signatures)):
        raise WebhookVerificationError("no matching signature: a wrong secret, or a body changed on the way")
    return _event(text)


def _event(text: str) -> dict[str, Any]:
    """The signed body as an event. Signed is not the same as well-formed: a sender holding the secret (or a
    misconfigured one) may sign anything, and the receiver still gets its one exception."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as error:  # not JSON (JSONDecodeError), or nested beyond the parser
        raise WebhookVerificationError("the signed body is not JSON") from error
    if not isinstance(event, dict):
        raise WebhookVerificationError("the signed body is not a JSON object")
    return event


# Unix seconds as the standard writes them: ASCII digits, no leading zero. The signature is computed over the
# number written so (what `standardwebhooks` signs): `000<now>` or other scripts' digits, which int() reads,
# would be checked against a text other than the header's.
_UNIX_SECONDS = re.compile(r"0|[1-9][0-9]{0,17}", re.ASCII)


def _timestamp(stamp: str, tolerance: timedelta, now: datetime) -> datetime:
    if not _UNIX_SECONDS.fullmatch(stamp):
        raise WebhookVerificationError(f"webhook-timestamp is not Unix seconds: {stamp[:32]!r}")
    try:
        sent_at = datetime.fromtimestamp(int(stamp), timezone.utc)
    except (OverflowError, ValueError, OSError) as error:
        raise WebhookVerificationError(f"webhook-timestamp out of range: {stamp[:32]!r}") from error
    if abs(now - sent_at) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp {stamp} is more than {tolerance} from now")
    return sent_at


def _signer(secret: str) -> Webhook:
    """A bad secret is the receiver's configuration, not the delivery: a ValueError, not a refusal."""
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError) as error:
        raise ValueError("not a webhook secret: expected whsec_ followed by base64") from error


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WebhookVerificationError("the body is not UTF-8") from error


def _offered(signatures: str) -> list[bytes]:
    """The header's `v1` signatures (space-separated `version,base64` pairs); malformed entries are skipped."""
    offered = []
    for entry in signatures.split():
        if entry.startswith(f"{SIGNATURE_VERSION},"):
            with contextlib.suppress(WebhookVerificationError):
                offered.append(_signature_bytes(entry))
    return offered


def _signature_bytes(versioned: str) -> bytes:
    try:
        return base64.b64decode(versioned.partition(",")[2], validate=True)
    except (binascii.Error, ValueError) as error:
        raise WebhookVerificationError("malformed signature") from error
