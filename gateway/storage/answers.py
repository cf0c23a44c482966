"""Stored answers of correlation ids (docs/placing-orders-and-replay.md): the claim on a key, the answer stored with the write."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from gateway.idempotency import Answer, Claim
from gateway.storage.db import Db, fetch_in, padded
from gateway.storage.types import StoredAnswer

def _answer(row: Any) -> StoredAnswer:
    fingerprint, status, body, content_type, location, _ = row
    return StoredAnswer(fingerprint, Answer(status, bytes(body), content_type, location))


async def stored_answer(db: Db, partner_id: str, key: str) -> tuple[StoredAnswer, int] | None:
    """The answer stored under the key, with when it was stored, live or not; read without claiming it."""
    return (await stored_answers(db, [(partner_id, key)])).get((partner_id, key))


GET_ANSWERS = """
    SELECT key, fingerprint, status, body, content_type, location, created FROM idempotency
    WHERE partner_id = ? AND key IN ({marks})
"""


async def stored_answers(db: Db, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[StoredAnswer, int]]:
    """`stored_answer` of several (partner id, key) pairs: one statement per partner, read by key."""
    by_partner: dict[str, list[str]] = {}
    for partner_id, key in keys:
        if "\x00" not in key:  # matches nothing stored (and would make the backend refuse the statement)
            by_partner.setdefault(partner_id, []).append(key)
    found = {}
    for partner_id, partner_keys in by_partner.items():
        for key, *row in await fetch_in(db, GET_ANSWERS, padded(partner_keys), partner_id, by_key=True):
            found[(partner_id, key)] = (_answer(row), int(row[-1]))
    return found


DROP_ANSWER = "DELETE FROM idempotency WHERE partner_id = ? AND key = ?"


async def claim(db: Db, partner_id: str, key: str, not_before: int) -> StoredAnswer | None:
    """Inside a write: the answer already stored under the key, or None with the key claimed until commit.
    LockHeld while another transaction has it claimed: the first request with the key is still executing."""
    await db.lock(f"answer\x1f{partner_id}\x1f{key}", wait=False)
    stored = await stored_answer(db, partner_id, key)
    if stored is None:
        return None
    if stored[1] >= not_before:
        return stored[0]
    await db.execute(DROP_ANSWER, (partner_id, key))  # expired: the key is free again
    return None


INSERT_ANSWER = """
    INSERT INTO idempotency (partner_id, key, fingerprint, request_id, status, body, content_type, location, created)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


async def store_answer(db: Db, claim: Claim, answer: Answer, created: int) -> None:
    await db.execute(
        INSERT_ANSWER,
        (claim.partner_id, claim.key, claim.fingerprint, _indexed(claim.request_id), answer.status, answer.body,
         answer.content_type, answer.location, created),
    )


REQUEST_ID_USED = "SELECT 1 FROM idempotency WHERE partner_id = ? AND request_id = ? AND created >= ? LIMIT 1"


async def request_id_used(db: Db, partner_id: str, request_id: str, not_before: int) -> bool:
    return bool(await db.fetch(REQUEST_ID_USED, (partner_id, _indexed(request_id), not_before)))


# A request id is indexed, and a PostgreSQL index row takes at most 2,704 bytes, while a header line may
# hold 8 KiB: a longer id is kept as its digest (ids of this length and shorter are kept as they are).
MAX_INDEXED_REQUEST_ID_BYTES = 255


def _indexed(request_id: str) -> str:
    encoded = request_id.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_INDEXED_REQUEST_ID_BYTES:
        return request_id
    return f"sha256:{hashlib.sha256(encoded).hexdigest()}"


PURGE_ANSWERS = "DELETE FROM idempotency WHERE created < ?"


async def purge_answers(db: Db, before: int) -> int:
    return await db.execute(PURGE_ANSWERS, (before,))
