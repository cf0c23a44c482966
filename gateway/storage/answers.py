"""Stored answers of correlation ids (SPEC 7): the claim on a key, the answer stored with the write."""
from __future__ import annotations

from typing import Any

from gateway.idempotency import Answer, Claim
import gateway.storage.orders as orders
from gateway.storage.db import Db
from gateway.storage.types import StoredAnswer

GET_ANSWER = """
    SELECT fingerprint, status, body, content_type, location, created FROM idempotency
    WHERE partner_id = ? AND key = ?
"""


def _answer(row: Any) -> StoredAnswer:
    fingerprint, status, body, content_type, location, _ = row
    return StoredAnswer(fingerprint, Answer(status, bytes(body), content_type, location))


async def stored_answer(db: Db, partner_id: str, key: str, not_before: int) -> StoredAnswer | None:
    """The live answer stored under the key, read without claiming it."""
    rows = await db.fetch(GET_ANSWER, (partner_id, key))
    return _answer(rows[0]) if rows and rows[0][-1] >= not_before else None


DROP_ANSWER = "DELETE FROM idempotency WHERE partner_id = ? AND key = ?"


async def claim(db: Db, partner_id: str, key: str, not_before: int) -> StoredAnswer | None:
    """Inside a write: the answer already stored under the key, or None with the key claimed until commit.
    Same-key requests in any process wait here for the first one's transaction to end, then see its answer."""
    await db.lock(f"answer\x1f{partner_id}\x1f{key}")
    rows = await db.fetch(GET_ANSWER, (partner_id, key))
    return await _live(db, partner_id, key, not_before, rows[0] if rows else None)


async def _live(db: Db, partner_id: str, key: str, not_before: int, row: Any) -> StoredAnswer | None:
    """The stored answer of a claim's row (None: no row), or None with an expired one dropped."""
    if row is None:
        return None
    if row[-1] >= not_before:
        return _answer(row)
    await db.execute(DROP_ANSWER, (partner_id, key))  # expired: the key is free again
    return None


# A creation's claim reads the reseller of the customer the partner can see with the stored answer: one
# statement (one row, its answer columns NULL when nothing is stored).
GET_ANSWER_AND_RESELLER = """
    SELECT i.fingerprint, i.status, i.body, i.content_type, i.location, i.created,
           (SELECT c.reseller_id FROM customers c JOIN resellers r ON r.reseller_id = c.reseller_id
            WHERE c.customer_id = ?3 AND r.partner_id = ?1)
    FROM (SELECT 1 AS one) AS probe LEFT JOIN idempotency i ON i.partner_id = ?1 AND i.key = ?2
"""


async def claim_for_customer(db: Db, partner_id: str, key: str, not_before: int,
                             customer_id: str) -> tuple[StoredAnswer | None, str | None]:
    """`claim`, and the reseller of the customer as the partner sees it (None: no such customer)."""
    await db.lock(f"answer\x1f{partner_id}\x1f{key}")
    rows = await db.fetch(GET_ANSWER_AND_RESELLER, (partner_id, key, customer_id))
    if not rows:  # a backend that cannot hold a parameter matches nothing: each read on its own, as before
        return await claim(db, partner_id, key, not_before), await orders.customer_reseller(db, customer_id, partner_id)
    *answer, reseller_id = rows[0]
    stored = await _live(db, partner_id, key, not_before, None if answer[0] is None else answer)
    return stored, None if reseller_id is None else str(reseller_id)


INSERT_ANSWER = """
    INSERT INTO idempotency (partner_id, key, fingerprint, request_id, status, body, content_type, location, created)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


async def store_answer(db: Db, claim: Claim, answer: Answer, created: int) -> None:
    await db.execute(
        INSERT_ANSWER,
        (claim.partner_id, claim.key, claim.fingerprint, claim.request_id, answer.status, answer.body,
         answer.content_type, answer.location, created),
    )


REQUEST_ID_USED = "SELECT 1 FROM idempotency WHERE partner_id = ? AND request_id = ? AND created >= ? LIMIT 1"


async def request_id_used(db: Db, partner_id: str, request_id: str, not_before: int) -> bool:
    return bool(await db.fetch(REQUEST_ID_USED, (partner_id, request_id, not_before)))


PURGE_ANSWERS = "DELETE FROM idempotency WHERE created < ?"


async def purge_answers(db: Db, before: int) -> int:
    return await db.execute(PURGE_ANSWERS, (before,))
