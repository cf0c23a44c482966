"""PostgreSQL's schema migrations, run under a session advisory lock, so that processes starting together
migrate once."""
from __future__ import annotations

import asyncpg

from gateway.storage.commit_order import NUMBERED_AT_COMMIT, ORDERS_WITHOUT_PARENT_KEYS
from gateway.storage.auth_failures import FAILURES_TABLES
from gateway.storage.rate_limits import BUCKETS_TABLE
from gateway.storage.schema import migrations

MIGRATION_LOCK = 0x6F72646572  # any constant shared by every gateway process ("order")

MIGRATIONS = migrations(bigint="BIGINT", blob="BYTEA", without_rowid="", event_seq="BIGINT PRIMARY KEY",
                        event_sequence="CREATE SEQUENCE order_events_seq;", numbered_at_commit=NUMBERED_AT_COMMIT,
                        orders_without_parent_keys=ORDERS_WITHOUT_PARENT_KEYS)


async def migrate(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        async with connection.transaction():
            await connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await connection.fetchval("SELECT max(version) FROM schema_version") or 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await connection.execute(script)
                await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
            for statement in (BUCKETS_TABLE, *FAILURES_TABLES):
                await connection.execute(statement)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
