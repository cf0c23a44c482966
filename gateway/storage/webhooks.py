"""Webhooks, their pending deliveries and the attempts made (times of deliveries and attempts in ms).

A delivery is written with its event (gateway.storage.events) and due at once. A process takes due ones
by a claim: one statement that pushes their `due` past the attempt's end (a lease) and stamps its claim id.
Another process skips a claimed delivery until the lease runs out, which only happens when its holder died
or hung: then it is attempted again, with the same event id. The holder records the outcome under its
claim id: delivered or given up deletes the delivery, a failure makes it due again at the next retry.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.storage.db import Db, fetch_in
from gateway.storage.partners import partner_exists
from gateway.storage.types import Attempt, Delivery, StorageError, Webhook

# `types` as stored: '' for every type, else ',a,b,' so that a type matches with LIKE '%,type,%'.


def types_column(types: Iterable[str]) -> str:
    chosen = sorted(set(types))
    return f",{','.join(chosen)}," if chosen else ""


def _types(column: str) -> tuple[str, ...]:
    return tuple(part for part in column.split(",") if part)


INSERT_WEBHOOK = """
    INSERT INTO webhooks (webhook_id, partner_id, url, types, secret, created)
    SELECT ?, partner_id, ?, ?, ?, ? FROM partners WHERE partner_id = ?
"""


async def add_webhook(db: Db, webhook: Webhook) -> None:
    row = (webhook.webhook_id, webhook.url, types_column(webhook.types), webhook.sealed_secret, webhook.created,
           webhook.partner_id)
    if not await db.execute(INSERT_WEBHOOK, row):
        raise StorageError(f"no partner {webhook.partner_id!r}")


WEBHOOK_COLUMNS = "webhook_id, partner_id, url, types, secret, created, disabled"
# Every webhook, or one partner's.
LIST_WEBHOOKS = f"""
    SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE partner_id = COALESCE(?, partner_id) ORDER BY created, webhook_id
"""
GET_WEBHOOK = f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE webhook_id = ?"


def _webhook(row: Sequence[Any]) -> Webhook:
    webhook_id, partner_id, url, types, secret, created, disabled = row
    return Webhook(str(webhook_id), str(partner_id), str(url), _types(str(types)), bytes(secret), int(created),
                   None if disabled is None else int(disabled))


async def list_webhooks(db: Db, partner_id: str | None) -> list[Webhook]:
    """Every webhook, or one partner's; a partner that does not exist is an error, not an empty list (as for
    its credentials)."""
    if partner_id is not None and not await partner_exists(db, partner_id):
        raise StorageError(f"no partner {partner_id!r}")
    return [_webhook(row) for row in await db.fetch(LIST_WEBHOOKS, (partner_id,))]


async def get_webhook(db: Db, webhook_id: str) -> Webhook | None:
    rows = await db.fetch(GET_WEBHOOK, (webhook_id,))
    return _webhook(rows[0]) if rows else None


ANY_ENABLED = "SELECT 1 FROM webhooks WHERE disabled IS NULL LIMIT 1"


async def any_enabled(db: Db) -> bool:
    return bool(await db.fetch(ANY_ENABLED))


DELETE_WEBHOOK = "DELETE FROM webhooks WHERE webhook_id = ?"  # its deliveries and attempts go with it


async def remove_webhook(db: Db, webhook_id: str) -> bool:
    return bool(await db.execute(DELETE_WEBHOOK, (webhook_id,)))


LATEST_ATTEMPTS = """
    SELECT event_id, attempt, attempted, outcome, status, error, next_attempt FROM webhook_attempts
    WHERE webhook_id = ? ORDER BY attempted DESC, attempt DESC LIMIT ?
"""


async def latest_attempts(db: Db, webhook_id: str, limit: int) -> list[Attempt]:
    return [
        Attempt(Delivery(webhook_id, str(event_id), int(attempt), ""), int(attempted), str(outcome),
                None if status is None else int(status), error, None if next_attempt is None else int(next_attempt))
        for event_id, attempt, attempted, outcome, status, error, next_attempt
        in await db.fetch(LATEST_ATTEMPTS, (webhook_id, limit))
    ]


# Per enabled webhook, when its earliest delivery is due, and how many (up to a bound) are due now: one
# probe of the (webhook_id, due) index each, however long a dead endpoint's backlog has grown.
DUE_BY_WEBHOOK = """
    SELECT w.webhook_id,
           (SELECT min(d.due) FROM webhook_deliveries d WHERE d.webhook_id = w.webhook_id),
           (SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.webhook_id AND d.due <= ?1
                                  LIMIT ?2) due_now)
    FROM webhooks w WHERE w.disabled IS NULL
"""


async def due_by_webhook(db: Db, now: int, bound: int) -> dict[str, tuple[int, int]]:
    """webhook id -> (when its earliest delivery is due, how many are due at `now`, at most `bound`), for
    the webhooks that have any."""
    rows = await db.fetch(DUE_BY_WEBHOOK, (now, bound))
    return {str(webhook_id): (int(due), int(count)) for webhook_id, due, count in rows if due is not None}


# SQLite runs one writer at a time, so a plain UPDATE claims; PostgreSQL claims under row locks, skipping
# rows another process is claiming at this moment rather than waiting for them.
CLAIM_SERIAL = """
    UPDATE webhook_deliveries SET due = ?3, claim = ?4, attempts = attempts + 1
    WHERE webhook_id = ?1 AND event_id IN (
        SELECT event_id FROM webhook_deliveries WHERE webhook_id = ?1 AND due <= ?2 ORDER BY due LIMIT ?5)
    RETURNING event_id, attempts
"""
CLAIM_SKIP_LOCKED = """
    UPDATE webhook_deliveries d SET due = ?3, claim = ?4, attempts = d.attempts + 1
    FROM (SELECT event_id FROM webhook_deliveries WHERE webhook_id = ?1 AND due <= ?2
          ORDER BY due LIMIT ?5 FOR UPDATE SKIP LOCKED) picked
    WHERE d.webhook_id = ?1 AND d.event_id = picked.event_id
    RETURNING d.event_id, d.attempts
"""


async def claim_deliveries(db: Db, webhook_id: str, now: int, lease_until: int, claim: str,
                           limit: int) -> list[Delivery]:
    """Up to `limit` of the webhook's due deliveries, each now this claim's until `lease_until`."""
    statement = CLAIM_SERIAL if db.commits_in_order else CLAIM_SKIP_LOCKED
    rows = await db.fetch(statement, (webhook_id, now, lease_until, claim, limit))
    return [Delivery(webhook_id, str(event_id), int(attempts), claim) for event_id, attempts in rows]


# An event is sent only while the webhook's partner still sees it (an import may have moved the order).
EVENT_BODIES = "SELECT event_id, body, traceparent FROM order_events WHERE partner_id = ? AND event_id IN ({marks})"


async def event_bodies(db: Db, partner_id: str, event_ids: Sequence[str]) -> dict[str, tuple[bytes, str | None]]:
    rows = await fetch_in(db, EVENT_BODIES, event_ids, partner_id)
    return {str(event_id): (bytes(body), traceparent) for event_id, body, traceparent in rows}


FINISH_DELIVERY = "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND event_id = ? AND claim = ?"
RETRY_DELIVERY = """
    UPDATE webhook_deliveries SET due = ?, claim = NULL WHERE webhook_id = ? AND event_id = ? AND claim = ?
"""
INSERT_ATTEMPT = """
    INSERT INTO webhook_attempts (webhook_id, event_id, attempt, attempted, outcome, status, error, next_attempt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
DISABLE_WEBHOOK = "UPDATE webhooks SET disabled = ? WHERE webhook_id = ? AND disabled IS NULL"
DROP_DELIVERIES = "DELETE FROM webhook_deliveries WHERE webhook_id = ?"
OUTCOME_DISABLED = "disabled"


async def record_attempt(db: Db, attempt: Attempt) -> bool:
    """The outcome, if the claim still holds the delivery (False: its lease ran out and another process may
    have it). A retry makes the delivery due at `next_attempt`; any other outcome ends it, and a 410 ends
    every delivery of the webhook and disables it."""
    delivery = attempt.delivery
    key = (delivery.webhook_id, delivery.event_id, delivery.claim)
    if attempt.next_attempt is not None:
        held = await db.execute(RETRY_DELIVERY, (attempt.next_attempt, *key))
    else:
        held = await db.execute(FINISH_DELIVERY, key)
    if not held:
        await _record_lost(db, attempt)
        return False
    await db.execute(INSERT_ATTEMPT, (delivery.webhook_id, delivery.event_id, delivery.attempt, attempt.attempted,
                                      attempt.outcome, attempt.status, attempt.error, attempt.next_attempt))
    if attempt.outcome == OUTCOME_DISABLED:
        await db.execute(DISABLE_WEBHOOK, (attempt.attempted // 1000, delivery.webhook_id))
        await db.execute(DROP_DELIVERIES, (delivery.webhook_id,))
    return True


WEBHOOK_KEPT = "SELECT 1 FROM webhooks WHERE webhook_id = ?"
# On PostgreSQL the row is locked as the attempt's foreign key would lock it: a removal not yet committed is
# waited for here, and then the row is gone (no insert), rather than failing the insert's key check.
WEBHOOK_KEPT_LOCKED = WEBHOOK_KEPT + " FOR KEY SHARE"
INSERT_LOST_ATTEMPT = INSERT_ATTEMPT.rstrip() + " ON CONFLICT (webhook_id, event_id, attempt) DO NOTHING"


async def _record_lost(db: Db, attempt: Attempt) -> None:
    """An attempt whose claim no longer holds its delivery (another lane's 410 dropped the webhook's
    deliveries, or the lease ran out) was made all the same: listed, without a next attempt of its own (the
    delivery is not this claim's to plan), unless the webhook is gone or that attempt is listed already."""
    delivery = attempt.delivery
    if await db.fetch(WEBHOOK_KEPT if db.commits_in_order else WEBHOOK_KEPT_LOCKED, (delivery.webhook_id,)):
        await db.execute(INSERT_LOST_ATTEMPT, (delivery.webhook_id, delivery.event_id, delivery.attempt,
                                               attempt.attempted, attempt.outcome, attempt.status, attempt.error, None))


async def record_and_claim(db: Db, attempt: Attempt | None, webhook_id: str, now: int, lease_until: int,
                           claim: str, limit: int) -> tuple[bool, list[Delivery]]:
    """A lane's one transaction per delivery: the outcome of its last attempt (if any; whether the claim
    still held it) and its next claim (none when `limit` is 0)."""
    held = await record_attempt(db, attempt) if attempt is not None else True
    claimed = await claim_deliveries(db, webhook_id, now, lease_until, claim, limit) if limit else []
    return held, claimed


OLDEST_PENDING = "SELECT min(created) FROM webhook_deliveries"


async def oldest_pending(db: Db) -> int | None:
    """When the oldest delivery still to make was created (seconds), None when there is none."""
    rows = await db.fetch(OLDEST_PENDING)
    return None if not rows or rows[0][0] is None else int(rows[0][0])


PURGE_ATTEMPTS = "DELETE FROM webhook_attempts WHERE attempted < ?"


async def purge_attempts(db: Db, before: int) -> int:
    """Drops the record of attempts made before `before` (seconds)."""
    return await db.execute(PURGE_ATTEMPTS, (before * 1000,))
