"""Storage: one implementation of every query (`SqlStorage`) over a backend the database URL's scheme picks,
here and only here. Each backend driver is imported only when used."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.storage.sql import SqlStorage, SqlTransaction
from gateway.storage.types import (
    Attempt,
    Delivery,
    Webhook,
    Bucket,
    Credential,
    CredentialRecord,
    Customer,
    CustomerScope,
    HistoryConditions,
    ImportCounts,
    ImportRecord,
    IndexChanges,
    IndexRow,
    LockHeld,
    PartnerRecord,
    RateOverride,
    Reseller,
    StorageError,
    StorageUnavailable,
    StoredAnswer,
)

Storage = SqlStorage
Transaction = SqlTransaction

__all__ = [
    "Attempt", "Delivery", "Webhook", "Bucket", "Credential", "CredentialRecord", "PartnerRecord", "RateOverride", "Customer", "CustomerScope", "HistoryConditions", "ImportCounts", "ImportRecord", "IndexChanges",
    "IndexRow", "LockHeld", "Reseller", "Storage", "StorageError", "StorageUnavailable", "StoredAnswer", "Transaction", "open_storage",
]


@asynccontextmanager
async def open_storage(url: str, pool_min_size: int = 1, pool_max_size: int = 10,
                       busy_timeout_seconds: float = 5.0) -> AsyncIterator[Storage]:
    """`busy_timeout_seconds` bounds how long a busy or unreachable database is waited for and retried
    before StorageUnavailable."""
    if url.startswith("sqlite://"):
        from gateway.storage.sqlite import open_sqlite

        async with open_sqlite(url, busy_timeout_seconds) as sqlite_backend:
            yield SqlStorage(sqlite_backend)
    elif url.startswith(("postgresql://", "postgres://")):
        from gateway.storage.postgres import open_postgres

        async with open_postgres(url, pool_min_size, pool_max_size, busy_timeout_seconds) as pg_backend:
            yield SqlStorage(pg_backend)
    else:
        raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")
