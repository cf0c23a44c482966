"""The one door every write to orders goes through.

Each such write moves each touched customer's `version`, journals which of its orders changed, and writes
an event for each order that changed (gateway.order_events), all in the write's own transaction. Readers
compare versions to know their cached index is current, and read the journal to refresh only the orders
that changed; a journal that no longer reaches back far enough (purged) or an "everything changed" entry
(an empty order id) makes them reload the customer.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from gateway.order_events import OrderChange, events_of
from gateway.storage.db import FEW_KEYS, Db
from gateway.storage.events import restamp, write_events
from gateway.storage.types import IndexChanges

EVERY_ORDER = ""  # journal entry: every order of the customer may have changed (visibility, a bulk import)
JOURNAL_RETENTION_SECONDS = 3600  # a cache older than this reloads its customer instead of refreshing
# Past this many changed orders of one customer in one write, caches reload the customer instead.
JOURNALED_ORDERS = 100

BUMP_VERSION = "UPDATE customers SET version = version + 1 WHERE customer_id = ? RETURNING version"
JOURNAL = "INSERT INTO order_changes (customer_id, version, order_id, created) VALUES (?, ?, ?, ?)"


# PostgreSQL: the rows under a placeholder version, which the COMMIT replaces with the customer's bumped one
# (gateway.storage.commit_order). A write that journals an order twice (an import) keeps one row.
JOURNAL_STAGED = """
    INSERT INTO order_changes (customer_id, version, order_id, created)
    SELECT ?1, -txid_current(), changed.order_id, ?3 FROM unnest(?2::text[]) AS changed (order_id)
    ON CONFLICT DO NOTHING
"""


async def record_changes(db: Db, changes: Sequence[OrderChange], *, reloads: Iterable[str] = (),
                         events: bool = True, bulk: bool = False, traceparent: str | None = None) -> None:
    """`changes`: the orders written, each with what it was before; `reloads`: customers every order of
    which may look different now, or be seen by another partner (a reseller, the customer or an order
    moved): their caches reload and their events go to whoever sees their orders now. `events=False` only
    for an import of history that partners have already seen; `bulk` for a write of many orders (an import),
    whose journal and events go to the database as it goes, not with its last statements; `traceparent`: the
    trace context of the request that made the changes, which their events carry to webhooks."""
    now = int(time.time())
    reloads = set(reloads)
    touched: dict[str, set[str]] = {customer_id: {EVERY_ORDER} for customer_id in reloads}
    for change in changes:
        touched.setdefault(change.order.customer_id, set()).add(change.order.order_id)
        if change.previous is not None and change.previous.get("customerId") != change.order.customer_id:
            touched.setdefault(str(change.previous.get("customerId")), set()).add(change.order.order_id)
    await _journal(db, {
        customer_id: order_ids if len(order_ids) <= JOURNALED_ORDERS else {EVERY_ORDER}
        for customer_id, order_ids in touched.items()
    }, now, bulk)
    if events:
        written = [event for change in changes for event in events_of(change, now)]
        await write_events(db, written, bulk, traceparent)
    await restamp(db, reloads)


async def _journal(db: Db, changed: Mapping[str, Iterable[str]], now: int, bulk: bool) -> None:
    """Moves each customer's version, journaling the ids of its orders that were written: at once where
    writers commit one at a time (SQLite), else at commit, in the order of the customers sorted."""
    if not db.commits_in_order:
        staged = [(customer_id, sorted(set(changed[customer_id])), now) for customer_id in sorted(changed)]
        await (db.executemany if bulk else db.execute_last)(JOURNAL_STAGED, staged)
        return
    rows: list[tuple[str, int, str, int]] = []
    for customer_id in sorted(changed):
        bumped = await db.fetch(BUMP_VERSION, (customer_id,))
        if bumped:
            version = int(bumped[0][0])
            rows.extend((customer_id, version, order_id, now) for order_id in sorted(set(changed[customer_id])))
    await db.executemany(JOURNAL, rows)


# A cache further behind than this many journal rows reloads its customer (on a thread of its own where the
# backend has one) rather than refresh so many orders one by one, on the event loop.
REFRESHED_ORDERS = FEW_KEYS
CHANGES_SINCE = """
    SELECT version, order_id FROM order_changes WHERE customer_id = ? AND version > ? ORDER BY version LIMIT ?
"""


async def changes_since(db: Db, customer_id: str, version: int, current: int) -> IndexChanges:
    """What changed after `version`, up to `current` at least; everything when the journal has a gap, or
    more than REFRESHED_ORDERS rows."""
    rows = await db.fetch_by_key(CHANGES_SINCE, (customer_id, version, REFRESHED_ORDERS + 1))
    versions = {int(changed_version) for changed_version, _ in rows}
    order_ids = {order_id for _, order_id in rows}
    newest = max(versions, default=version)
    complete = versions == set(range(version + 1, newest + 1)) and newest >= current
    everything = not complete or EVERY_ORDER in order_ids or len(rows) > REFRESHED_ORDERS
    return IndexChanges(newest, frozenset(order_ids - {EVERY_ORDER}), everything)


PURGE_JOURNAL = "DELETE FROM order_changes WHERE created < ?"


async def purge_journal(db: Db, now: int) -> int:
    return await db.execute(PURGE_JOURNAL, (now - JOURNAL_RETENTION_SECONDS,))
