"""Stored answers of correlation ids (SPEC 7): the claim on a key, the answer stored with the write."""
from __future__ import annotations

from typing import Any

from gateway.idempotency import IdempotencyRecord, StoredResponse
from gateway.storage.db import Db
from gateway.storage.types import StoredOutcome

GET_OUTCOME = """
    SELECT fingerprint, status, body, content_type, location, created FROM idempotency
    WHERE partner_id = ? AND key = ?
"""


def _outcome(row: Any) -> StoredOutcome:
    fingerprint, status, body, content_type, location, _ = row
    return StoredOutcome(fingerprint, StoredResponse(status, bytes(body), content_type, location))


async def stored_outcome(db: Db, partner_id: str, key: str, not_before: int) -> StoredOutcome | None:
    """The live answer stored under the key, read without claiming it."""
    rows = await db.fetch(GET_OUTCOME, (partner_id, key))
    return _outcome(rows[0]) if rows and rows[0][-1] >= not_before else None


DROP_OUTCOME = "DELETE FROM idempotency WHERE partner_id = ? AND key = ?"


async def claim(db: Db, partner_id: str, key: str, not_before: int) -> StoredOutcome | None:
    """Inside a write: the answer already stored under the key, or None with the key claimed until commit.
    Same-key requests in any process wait here for the first one's transaction to end, then see its answer."""
    await db.lock(f"outcome\x1f{partner_id}\x1f{key}")
    rows = await db.fetch(GET_OUTCOME, (partner_id, key))
    if not rows:
        return None
    if rows[0][-1] >= not_before:
        return _outcome(rows[0])
    await db.execute(DROP_OUTCOME, (partner_id, key))  # expired: the key is free again
    return None


INSERT_OUTCOME = """
    INSERT INTO idempotency (partner_id, key, fingerprint, request_id, status, body, content_type, location, created)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


async def store_outcome(db: Db, record: IdempotencyRecord, created: int) -> None:
    key, response = record.claim, record.response
    await db.execute(
        INSERT_OUTCOME,
        (key.partner_id, key.key, key.fingerprint, key.request_id, response.status, response.body,
         response.content_type, response.location, created),
    )


REQUEST_ID_USED = "SELECT 1 FROM idempotency WHERE partner_id = ? AND request_id = ? AND created >= ? LIMIT 1"


async def request_id_used(db: Db, partner_id: str, request_id: str, not_before: int) -> bool:
    return bool(await db.fetch(REQUEST_ID_USED, (partner_id, request_id, not_before)))


PURGE_OUTCOMES = "DELETE FROM idempotency WHERE created < ?"


async def purge_outcomes(db: Db, before: int) -> int:
    return await db.execute(PURGE_OUTCOMES, (before,))
