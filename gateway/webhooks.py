"""Webhooks as the operator CLI manages them: added with a secret shown once, listed without it, removed,
and their latest delivery attempts."""
from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from gateway.order_model import format_time
from gateway.settings import Settings
from gateway.storage import Attempt, Storage, Webhook
from gateway.webhook_guard import check_url
from gateway.webhook_secrets import SecretBox, new_sealing_key, new_secret


async def secret_box(settings: Settings, storage: Storage) -> SecretBox:
    """Sealed with the configured key, else with the one generated once and kept in the database."""
    return SecretBox(settings.webhook_secret_key or await storage.sealing_key(new_sealing_key()))


def new_webhook_id() -> str:
    """`wh_`, the time in milliseconds, random: ids sort in the order the webhooks were added."""
    return f"wh_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


async def add_webhook(storage: Storage, settings: Settings, partner_id: str, url: str,
                      types: Sequence[str]) -> dict[str, object]:
    """The new webhook as `webhooks add` prints it: the only time its secret is shown. Raises TargetRefused
    for a URL no delivery could be made to, StorageError for an unknown partner."""
    check_url(url, settings.webhook_allow_http)
    webhook_id, secret = new_webhook_id(), new_secret()
    sealed = (await secret_box(settings, storage)).seal(webhook_id, secret)
    webhook = Webhook(webhook_id, partner_id, url, tuple(sorted(set(types))), sealed, int(time.time()), None)
    await storage.add_webhook(webhook)
    return {"webhookId": webhook_id, "partnerId": partner_id, "url": url, "types": list(webhook.types),
            "secret": secret}


def webhook_line(webhook: Webhook) -> dict[str, object]:
    """A webhook as `webhooks list` prints it: never its secret."""
    return {
        "webhookId": webhook.webhook_id,
        "partnerId": webhook.partner_id,
        "url": webhook.url,
        "types": list(webhook.types),
        "created": format_time(webhook.created),
        "disabled": None if webhook.disabled is None else format_time(webhook.disabled),
    }


def attempt_line(attempt: Attempt) -> dict[str, object]:
    """One attempt as `webhooks deliveries` prints it (times to the millisecond, UTC)."""
    return {
        "eventId": attempt.delivery.event_id,
        "attempt": attempt.delivery.attempt,
        "time": _time_ms(attempt.attempted),
        "result": attempt.outcome,
        "status": attempt.status,
        "error": attempt.error,
        "nextAttempt": None if attempt.next_attempt is None else _time_ms(attempt.next_attempt),
    }


def _time_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
