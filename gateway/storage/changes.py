"""The one door every write to a customer's orders goes through.

Each such write moves the customer's `version` and journals which of its orders changed, in the write's own
transaction. Readers compare versions to know their cached index is current, and read the journal to
refresh only the orders that changed; a journal that no longer reaches back far enough (purged) or an
"everything changed" entry (an empty order id) makes them reload the customer.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from gateway.storage.db import Db
from gateway.storage.types import IndexChanges

EVERY_ORDER = ""  # journal entry: every order of the customer may have changed (visibility, a bulk import)
JOURNAL_RETENTION_SECONDS = 3600  # a cache older than this reloads its customer instead of refreshing

BUMP_VERSION = "UPDATE customers SET version = version + 1 WHERE customer_id = ? RETURNING version"
JOURNAL = "INSERT INTO order_changes (customer_id, version, order_id, created) VALUES (?, ?, ?, ?)"


# Both in one statement where the backend has writable CTEs: one round trip per customer.
BUMP_AND_JOURNAL = """
    WITH bumped AS (UPDATE customers SET version = version + 1 WHERE customer_id = ?1 RETURNING version)
    INSERT INTO order_changes (customer_id, version, order_id, created)
    SELECT ?1, bumped.version, changed.order_id, ?3 FROM bumped, unnest(?2::text[]) AS changed (order_id)
"""


async def record_changes(db: Db, changed: Mapping[str, Iterable[str]]) -> None:
    """`changed` maps each customer to the ids of its orders that were written (EVERY_ORDER for all)."""
    now = int(time.time())
    if db.writable_ctes:
        for customer_id in sorted(changed):  # one lock order for every writer: no deadlock between two
            await db.execute(BUMP_AND_JOURNAL, (customer_id, sorted(set(changed[customer_id])), now))
        return
    rows: list[tuple[str, int, str, int]] = []
    for customer_id in sorted(changed):
        bumped = await db.fetch(BUMP_VERSION, (customer_id,))
        if bumped:
            version = int(bumped[0][0])
            rows.extend((customer_id, version, order_id, now) for order_id in sorted(set(changed[customer_id])))
    await db.executemany(JOURNAL, rows)


CHANGES_SINCE = "SELECT version, order_id FROM order_changes WHERE customer_id = ? AND version > ?"


async def changes_since(db: Db, customer_id: str, version: int, current: int) -> IndexChanges:
    """What changed after `version`, up to `current` at least; everything when the journal has a gap."""
    versions: set[int] = set()
    order_ids: set[str] = set()
    for changed_version, order_id in await db.fetch(CHANGES_SINCE, (customer_id, version)):
        versions.add(int(changed_version))
        order_ids.add(order_id)
    newest = max(versions, default=version)
    complete = versions == set(range(version + 1, newest + 1)) and newest >= current
    return IndexChanges(newest, frozenset(order_ids - {EVERY_ORDER}), not complete or EVERY_ORDER in order_ids)


PURGE_JOURNAL = "DELETE FROM order_changes WHERE created < ?"


async def purge_journal(db: Db, now: int) -> int:
    return await db.execute(PURGE_JOURNAL, (now - JOURNAL_RETENTION_SECONDS,))
