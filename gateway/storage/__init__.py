"""The storage interface. The database URL's scheme picks the backend here, and only here."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from gateway.idempotency import IdempotencyRecord, StoredResponse
from gateway.orders import Order


class StorageError(Exception):
    """A write was refused for a reason the caller can report (a missing parent, a duplicate id)."""


@dataclasses.dataclass(frozen=True)
class Credential:
    partner_id: str
    fingerprint: str  # short, non-secret: what logs show instead of the API key
    secret_hash: str
    revoked: bool


@dataclasses.dataclass(frozen=True)
class CustomerScope:
    """A customer as one partner sees it. `version` moves on every change to the customer's orders."""

    customer_id: str
    coterm_date: str | None
    version: int


@dataclasses.dataclass(frozen=True)
class IndexRow:
    """What the history filters need of one order, without its body."""

    created: int
    order_id: str
    order_type: str
    status: str
    reseller_id: str
    reference_order_id: str
    external_reference_id: str
    offer_ids: frozenset[str]
    subscription_ids: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Reseller:
    reseller_id: str
    partner_id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Customer:
    customer_id: str
    reseller_id: str
    company_name: str
    coterm_date: str | None


ImportRecord = Reseller | Customer | Order


@dataclasses.dataclass
class ImportCounts:
    written: int = 0
    unchanged: int = 0


@dataclasses.dataclass(frozen=True)
class StoredOutcome:
    """What a correlation id already stands for: its request's fingerprint and the answer given."""

    fingerprint: str
    response: StoredResponse


class Transaction(Protocol):
    """One write transaction: everything done through it commits together, or nothing does."""

    async def stored_outcome(self, partner_id: str, key: str, not_before: int) -> StoredOutcome | None:
        """The live outcome stored under the key (one older than `not_before` is dropped)."""

    async def store_outcome(self, record: IdempotencyRecord, created: int) -> None: ...

    async def customer_reseller(self, customer_id: str, partner_id: str) -> str | None:
        """The reseller of a customer the partner can see."""

    async def visible_order(self, customer_id: str, order_id: str, partner_id: str) -> Order | None: ...

    async def returned_quantities(self, original_id: str) -> dict[int, int]:
        """Quantities per line number of the RETURNs of an order that are neither failed nor cancelled."""

    async def insert_order(self, order: Order) -> bool:
        """False when the order id is taken."""

    async def update_order(self, order: Order) -> None: ...


class Storage(Protocol):
    async def ping(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def stored_outcome(self, partner_id: str, key: str, not_before: int) -> StoredOutcome | None: ...

    async def request_id_used(self, partner_id: str, request_id: str, not_before: int) -> bool: ...

    async def purge_outcomes(self, before: int) -> int:
        """Drops outcomes stored before `before`; how many."""

    async def signing_key(self, candidate: str) -> str:
        """The stored signing key; `candidate` is stored first when there is none yet."""

    async def create_partner(self, partner_id: str, name: str) -> None: ...

    async def partner_exists(self, partner_id: str) -> bool: ...

    async def create_credential(self, partner_id: str, key_hash: str, fingerprint: str, secret_hash: str) -> None: ...

    async def get_credential(self, key_hash: str) -> Credential | None: ...

    async def revoke_credential(self, key_hash: str) -> bool:
        """True when a credential with that key existed (revoking twice is harmless)."""

    async def customer_scope(self, customer_id: str, partner_id: str) -> CustomerScope | None: ...

    async def order_index(self, customer_id: str, partner_id: str) -> list[IndexRow]: ...

    async def order_bodies(self, order_ids: Sequence[str]) -> dict[str, bytes]: ...

    async def order_body(self, customer_id: str, order_id: str, partner_id: str) -> bytes | None: ...

    async def import_records(self, records: Iterable[tuple[int, ImportRecord]]) -> ImportCounts:
        """Upsert all records in one transaction; StorageError names the line number of the first bad one."""

    async def set_order_status(self, order_id: str, status: str) -> Order | None: ...


@asynccontextmanager
async def open_storage(url: str, pool_min_size: int = 1, pool_max_size: int = 10) -> AsyncIterator[Storage]:
    """The backend named by the URL's scheme; each driver is imported only when used."""
    if url.startswith("sqlite://"):
        from gateway.storage.sqlite import SqliteStorage

        async with SqliteStorage.open(url) as storage:
            yield storage
    elif url.startswith(("postgresql://", "postgres://")):
        from gateway.storage.postgres import PostgresStorage

        async with PostgresStorage.open(url, pool_min_size, pool_max_size) as pg_storage:
            yield pg_storage
    else:
        raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")
