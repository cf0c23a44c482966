"""Rate-limit buckets, one row per partner, each read and rewritten under the partner's lock in a transaction
of its own. How many tokens to take is the caller's decision (gateway.rate_limit); this only keeps the row."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.storage.db import Db
from gateway.storage.types import Bucket

R = TypeVar("R")

# Where the buckets are kept (beside the orders on PostgreSQL, in a file of their own beside a SQLite
# database), created when the database is opened: state that may be lost, never migrated.
BUCKETS_TABLE = (
    "CREATE TABLE IF NOT EXISTS rate_buckets (partner_id TEXT PRIMARY KEY, "
    "tokens DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)"
)

GET_BUCKET = "SELECT tokens, updated FROM rate_buckets WHERE partner_id = ?"
PUT_BUCKET = (
    "INSERT INTO rate_buckets (partner_id, tokens, updated) VALUES (?, ?, ?) "
    "ON CONFLICT (partner_id) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated"
)


async def take_tokens(db: Db, partner_id: str, draw: Callable[[Bucket | None], tuple[Bucket, R]]) -> R:
    """`draw` sees the partner's bucket (None before its first request) and says what it becomes."""
    await db.lock(f"rate:{partner_id}")
    rows = await db.fetch(GET_BUCKET, (partner_id,))
    bucket, result = draw(Bucket(float(rows[0][0]), float(rows[0][1])) if rows else None)
    await db.execute(PUT_BUCKET, (partner_id, bucket.tokens, bucket.updated))
    return result
