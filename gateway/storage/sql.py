"""The gateway's storage over any backend: the backend supplies connections and runs units of work; the
statements live in one module per aggregate (partners, answers, orders, history, imports, changes)."""
from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from gateway.idempotency import Answer, Claim
from gateway.order_model import Order
import gateway.storage.changes as changes
import gateway.storage.events as events
import gateway.storage.history as history
from gateway.storage.history import Window
import gateway.storage.imports as imports
import gateway.storage.orders as orders
import gateway.storage.answers as answers
import gateway.storage.auth_failures as auth_failures
import gateway.storage.partners as partners
import gateway.storage.rate_limits as rate_limits
import gateway.storage.webhooks as webhooks
from gateway.storage.db import Backend, Db
from gateway.storage.key_batches import KeyBatches
from gateway.storage.types import Credential, CustomerScope, HistoryConditions, ImportCounts, ImportRecord
from gateway.storage.types import Bucket, CredentialRecord, IndexChanges, IndexRow, PartnerRecord, RateOverride
from gateway.storage.types import Attempt, Delivery, StoredAnswer, Webhook

T = TypeVar("T")
R = TypeVar("R")


class SqlTransaction:
    """What a write of the order domain may do inside its one transaction."""

    def __init__(self, db: Db) -> None:
        self._db = db

    async def claim(self, partner_id: str, key: str, not_before: int) -> StoredAnswer | None:
        return await answers.claim(self._db, partner_id, key, not_before)

    async def store_answer(self, claim: Claim, answer: Answer, created: int) -> None:
        await answers.store_answer(self._db, claim, answer, created)

    async def customer_reseller(self, customer_id: str, partner_id: str) -> str | None:
        return await orders.customer_reseller(self._db, customer_id, partner_id)

    async def visible_order(self, customer_id: str, order_id: str, partner_id: str) -> Order | None:
        return await orders.visible_order(self._db, customer_id, order_id, partner_id)

    async def returned_quantities(self, original_id: str) -> dict[int, int]:
        return await orders.returned_quantities(self._db, original_id)

    async def insert_order(self, order: Order, traceparent: str | None = None) -> bool:
        return await orders.insert_order(self._db, order, traceparent)

    async def update_order(self, before: Order, after: Order, traceparent: str | None = None) -> None:
        await orders.store_changes(self._db, before, after, traceparent)


class SqlStorage:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._reader = backend.reader
        self._write_listeners: list[Callable[[], None]] = []
        # Where a read by key is a round trip, the reads of requests asked at once share one.
        travel = self._reader.keyed_reads_travel
        self._scopes = KeyBatches(lambda keys: history.customer_scopes(self._reader, keys)) if travel else None
        self._answers = KeyBatches(lambda keys: answers.stored_answers(self._reader, keys)) if travel else None

    def on_write(self, listener: Callable[[], None]) -> None:
        """`listener` is called after each order write of this process commits (the webhook worker: the
        write's deliveries are due at once)."""
        self._write_listeners.append(listener)

    async def write(self, unit: Callable[[SqlTransaction], Coroutine[Any, Any, T]], *, grouped: bool = False) -> T:
        """`grouped`: the unit takes no lock it would wait for, and may share its transaction (Backend.write)."""
        result = await self._backend.write(lambda db: unit(SqlTransaction(db)), grouped=grouped)
        for listener in self._write_listeners:
            listener()
        return result

    async def ping(self) -> None:
        await partners.ping(self._reader)

    async def ready(self) -> None:
        """The database answers and can take a write now; StorageUnavailable (or the driver's error) if not."""
        await partners.ping(self._reader)
        await self._backend.write(partners.probe_write)

    async def signing_key(self, candidate: str) -> str:
        return await self._backend.write(lambda db: partners.signing_key(db, candidate))

    async def sealing_key(self, candidate: str) -> str:
        return await self._backend.write(lambda db: partners.sealing_key(db, candidate))

    async def cursor_key(self, candidate: str) -> str:
        return await self._backend.write(lambda db: partners.cursor_key(db, candidate))

    async def create_partner(self, partner_id: str, name: str) -> None:
        await self._backend.write(lambda db: partners.create_partner(db, partner_id, name))

    async def partner_exists(self, partner_id: str) -> bool:
        return await partners.partner_exists(self._reader, partner_id)

    async def create_credential(self, partner_id: str, key_hash: str, fingerprint: str, secret_hash: str) -> None:
        await self._backend.write(
            lambda db: partners.create_credential(db, partner_id, key_hash, fingerprint, secret_hash)
        )

    async def get_credential(self, key_hash: str) -> Credential | None:
        return await partners.get_credential(self._reader, key_hash)

    async def revoke_credential(self, key_hash: str) -> bool:
        return await self._backend.write(lambda db: partners.revoke_credential(db, key_hash))

    async def revoke_partner_credentials(self, partner_id: str) -> int:
        return await self._backend.write(lambda db: partners.revoke_partner_credentials(db, partner_id))

    async def list_partners(self) -> list[PartnerRecord]:
        return await partners.list_partners(self._reader)

    async def list_credentials(self, partner_id: str) -> list[CredentialRecord]:
        return await partners.list_credentials(self._reader, partner_id)

    async def rate_override(self, partner_id: str) -> RateOverride:
        return await partners.rate_override(self._reader, partner_id)

    async def set_rate_override(self, partner_id: str, override: RateOverride) -> None:
        await self._backend.write(lambda db: partners.set_rate_override(db, partner_id, override))

    async def take_tokens(self, partner_id: str, draw: Callable[[Bucket | None], tuple[Bucket, R]]) -> R:
        """Whatever `draw` makes of the partner's bucket, written back in the same transaction."""
        return await self._backend.write_buckets(lambda db: rate_limits.take_tokens(db, partner_id, draw))

    async def recent_auth_failures(self, pair: str, since: float, most: int) -> list[float]:
        """Read in a short transaction of the buckets' store, where the failures are kept."""
        return await self._backend.write_buckets(lambda db: auth_failures.recent_failures(db, pair, since, most))

    async def authentication_attempt(self, pair: str, now: float, window: float, most: int,
                                     verify: Callable[[], bool]) -> tuple[float | None, bool]:
        return await self._backend.write_buckets(
            lambda db: auth_failures.attempt(db, pair, now, window, most, verify)
        )

    async def stored_answer(self, partner_id: str, key: str, not_before: int) -> StoredAnswer | None:
        if self._answers is None:
            stored = await answers.stored_answer(self._reader, partner_id, key)
        else:
            stored = await self._answers.get((partner_id, key))
        return stored[0] if stored is not None and stored[1] >= not_before else None

    async def request_id_used(self, partner_id: str, request_id: str, not_before: int) -> bool:
        return await answers.request_id_used(self._reader, partner_id, request_id, not_before)

    async def purge(self, answers_before: int, events_before: int) -> tuple[int, int]:
        """Drops expired answers, expired events (and the record of webhook attempts as old) and old journal
        entries; how many answers and events."""
        await self._backend.write(lambda db: changes.purge_journal(db, int(time.time())), lengthy=True)
        purged_events = await self._backend.write(lambda db: events.purge_events(db, events_before), lengthy=True)
        await self._backend.write(lambda db: webhooks.purge_attempts(db, events_before), lengthy=True)
        purged_answers = await self._backend.write(lambda db: answers.purge_answers(db, answers_before), lengthy=True)
        return purged_answers, purged_events

    async def events_after(self, partner_id: str, after: int, limit: int, customer_ids: Iterable[str],
                           types: Iterable[str]) -> list[tuple[int, bytes]]:
        """(number, event) of the partner's events after `after` that it can see now, oldest first."""
        return await events.feed(self._reader, partner_id, after, limit, customer_ids, types)

    async def events_purged_through(self) -> int:
        return await events.purged_through(self._reader)

    async def partner_events_purged_through(self, partner_id: str) -> int:
        return await events.partner_purged_through(self._reader, partner_id)

    async def customer_scope(self, customer_id: str, partner_id: str) -> CustomerScope | None:
        if self._scopes is not None:
            return await self._scopes.get((customer_id, partner_id))
        return await history.customer_scope(self._reader, customer_id, partner_id)

    async def order_index(self, customer_id: str, partner_id: str) -> list[IndexRow]:
        return await history.order_index(self._reader, customer_id, partner_id)

    async def order_index_of(self, customer_id: str, partner_id: str, order_ids: Sequence[str]) -> list[IndexRow]:
        return await history.order_index_of(self._reader, customer_id, partner_id, order_ids)

    async def changes_since(self, customer_id: str, version: int, current: int) -> IndexChanges:
        return await changes.changes_since(self._reader, customer_id, version, current)

    async def order_bodies(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        return await history.order_bodies(self._reader, order_ids)

    async def order_body(self, customer_id: str, order_id: str, partner_id: str) -> bytes | None:
        return await history.order_body(self._reader, customer_id, order_id, partner_id)

    async def count_orders(self, customer_id: str, partner_id: str, conditions: HistoryConditions,
                           window: Window = (None, None)) -> int:
        return await history.count_orders(self._reader, customer_id, partner_id, conditions, window)

    async def page_bodies(self, customer_id: str, partner_id: str, conditions: HistoryConditions, window: Window,
                          offset: int, limit: int) -> list[bytes]:
        return await history.page_bodies(self._reader, customer_id, partner_id, conditions, window, offset, limit)

    async def import_records(self, records: Iterable[tuple[int, ImportRecord]], events: bool = True) -> ImportCounts:
        # Once: the records are read as the import goes, and a second run would write only those left.
        return await self._backend.write(lambda db: imports.import_records(db, records, events), once=True,
                                         lengthy=True)

    async def set_order_status(self, order_id: str, status: str) -> Order | None:
        return await self._backend.write(lambda db: orders.set_order_status(db, order_id, status))

    async def add_webhook(self, webhook: Webhook) -> None:
        await self._backend.write(lambda db: webhooks.add_webhook(db, webhook))

    async def list_webhooks(self, partner_id: str | None = None) -> list[Webhook]:
        return await webhooks.list_webhooks(self._reader, partner_id)

    async def get_webhook(self, webhook_id: str) -> Webhook | None:
        return await webhooks.get_webhook(self._reader, webhook_id)

    async def any_enabled_webhook(self) -> bool:
        return await webhooks.any_enabled(self._reader)

    async def remove_webhook(self, webhook_id: str) -> bool:
        return await self._backend.write(lambda db: webhooks.remove_webhook(db, webhook_id))

    async def latest_attempts(self, webhook_id: str, limit: int) -> list[Attempt]:
        return await webhooks.latest_attempts(self._reader, webhook_id, limit)

    async def deliveries_due_by_webhook(self, now: int, bound: int) -> dict[str, tuple[int, int]]:
        return await webhooks.due_by_webhook(self._reader, now, bound)

    async def record_and_claim(self, attempt: Attempt | None, webhook_id: str, now: int, lease_until: int,
                               claim: str, limit: int) -> tuple[bool, list[Delivery]]:
        return await self._backend.write(
            lambda db: webhooks.record_and_claim(db, attempt, webhook_id, now, lease_until, claim, limit)
        )

    async def event_bodies(self, partner_id: str, event_ids: Sequence[str]) -> dict[str, tuple[bytes, str | None]]:
        return await webhooks.event_bodies(self._reader, partner_id, event_ids)

    async def oldest_pending_delivery(self) -> int | None:
        return await webhooks.oldest_pending(self._reader)
