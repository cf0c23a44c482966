"""What storage hands out and takes in: plain records, no behaviour."""
from __future__ import annotations

import dataclasses
from typing import Protocol

from gateway.idempotency import Answer
from gateway.order_model import Order


class StorageError(Exception):
    """A write was refused for a reason the caller can report (a missing parent, a duplicate id)."""


class StorageBusy(Exception):
    """A write met a lock held by a long writer (an import) and gave way at once, nothing done: the backend
    runs it again after a pause, within the busy timeout, then StorageUnavailable."""


class LockHeld(Exception):
    """A lock taken without waiting (Db.lock) is held by another transaction; this one took nothing."""


class StorageUnavailable(Exception):
    """The database cannot serve now (busy or locked past the busy timeout, disk full, connection lost,
    failing over); a write that raised it did not commit, or its outcome is unknown to this process."""


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


@dataclasses.dataclass(frozen=True, slots=True)
class IndexRow:
    """What the history filters need of one order, without its body."""

    created: int
    order_id: str
    order_type: str
    status: str
    reseller_id: str
    reference_order_id: str
    external_reference_id: str
    offer_ids: tuple[str, ...]
    subscription_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class IndexChanges:
    """What changed in a customer's orders after a version: the orders to read again, or everything."""

    version: int  # the newest version the changes reach
    order_ids: frozenset[str]
    everything: bool


class HistoryConditions(Protocol):
    """The filters of a history query, as SQL pages a customer whose index is not cached."""

    @property
    def order_types(self) -> frozenset[str]: ...
    @property
    def statuses(self) -> frozenset[str]: ...
    @property
    def offer_ids(self) -> frozenset[str]: ...
    @property
    def subscription_ids(self) -> frozenset[str]: ...
    @property
    def reference_order_id(self) -> str | None: ...
    @property
    def external_reference_id(self) -> str | None: ...
    @property
    def reseller_id(self) -> str | None: ...


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
class StoredAnswer:
    """What a correlation id already stands for: its request's fingerprint and the answer given."""

    fingerprint: str
    answer: Answer


@dataclasses.dataclass(frozen=True)
class RateOverride:
    """A partner's own rate limit, where `partners set-rate-limit` gave one (None: the configured default)."""

    per_second: float | None
    burst: int | None


@dataclasses.dataclass(frozen=True)
class PartnerRecord:
    """A partner as the operator lists it."""

    partner_id: str
    name: str
    override: RateOverride
    active_credentials: int


@dataclasses.dataclass(frozen=True)
class CredentialRecord:
    """A credential as the operator lists it: its fingerprint, never the key or the secret."""

    fingerprint: str
    created: int
    revoked: int | None


@dataclasses.dataclass(frozen=True)
class Bucket:
    """A partner's shared token bucket as stored: `tokens` as of `updated` (Unix seconds)."""

    tokens: float
    updated: float


@dataclasses.dataclass(frozen=True)
class Webhook:
    """A partner's webhook: where its events go, which types (empty: all), and its sealed secret."""

    webhook_id: str
    partner_id: str
    url: str
    types: tuple[str, ...]
    sealed_secret: bytes
    created: int
    disabled: int | None  # when a 410 answer disabled it


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event claimed for one attempt at one webhook; `attempt` counts from 1."""

    webhook_id: str
    event_id: str
    attempt: int
    claim: str  # the claim's own id: only its holder may record the attempt's outcome


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt (times in milliseconds since the epoch)."""

    delivery: Delivery
    attempted: int
    outcome: str  # delivered, failed (to be retried), given_up, disabled (a 410), skipped (no longer visible)
    status: int | None
    error: str | None
    next_attempt: int | None
