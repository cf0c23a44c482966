"""One customer's orders as one partner sees them, sorted for paging, kept up to date in place.

Counting and skipping in SQL cost time proportional to the customer's order count (COUNT(*) and OFFSET
walk the index), so the history cache keeps each customer's index rows sorted by (creation, order id): a
date window is two binary searches, an offset is a list index. A write replaces just the rows of the orders
it changed. `nbytes` estimates what the index holds in memory, bodies included, so the cache is bounded in
bytes, whatever the size of the orders' fields.
"""
from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable

from gateway.storage import IndexRow

# What a row costs beside its strings: the slotted row, its creation time, its two tuples, its entry in the
# position map and its pointer in the sorted list (tracemalloc on CPython 3.11: about 300 bytes).
ROW_OVERHEAD_BYTES = 300
STRING_OVERHEAD_BYTES = 49  # a str object beside its characters; shared ones (interned offers) count in full
BODY_OVERHEAD_BYTES = 120  # a cached body's bytes object and its dict entry, beside its length


def row_bytes(row: IndexRow) -> int:
    strings = (row.order_id, row.reference_order_id, row.external_reference_id, *row.offer_ids, *row.subscription_ids)
    return ROW_OVERHEAD_BYTES + sum(len(text) + STRING_OVERHEAD_BYTES for text in strings if text)


def _sort_key(row: IndexRow) -> tuple[int, str]:
    return (row.created, row.order_id)


def _created(row: IndexRow) -> int:
    return row.created


class CustomerIndex:
    def __init__(self, version: int, rows: list[IndexRow]) -> None:
        self.version = version  # the customer's version this index reflects at least
        self._rows = sorted(rows, key=_sort_key)  # oldest first; pages read it from the end
        self._created = {row.order_id: row.created for row in self._rows}
        self.bodies: dict[str, bytes] = {}
        self.nbytes = sum(map(row_bytes, self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def window(self, low: int | None, high: int | None) -> tuple[int, int]:
        """Positions [first, last) of the rows created within the inclusive bounds."""
        first = 0 if low is None else bisect.bisect_left(self._rows, low, key=_created)
        last = len(self._rows) if high is None else bisect.bisect_right(self._rows, high, key=_created)
        return first, max(first, last)

    def newest_first(self, first: int, last: int) -> list[IndexRow]:
        """The rows of the window, newest first (a copy: a list of references, cheap to make)."""
        return self._rows[first:last][::-1]

    def page(self, first: int, last: int, offset: int, limit: int) -> list[IndexRow]:
        """Rows `offset` to `offset + limit` of the window, newest first, without walking the window."""
        start = last - 1 - offset
        return [self._rows[position] for position in range(start, max(start - limit, first - 1), -1)]

    def add_body(self, order_id: str, body: bytes) -> None:
        if order_id not in self.bodies:
            self.bodies[order_id] = body
            self.nbytes += len(body) + BODY_OVERHEAD_BYTES

    def refresh(self, version: int, order_ids: Collection[str], fresh: Iterable[IndexRow]) -> None:
        """The rows of `order_ids` as now stored: `fresh` holds those the partner still sees."""
        for order_id in order_ids:
            self._remove(order_id)
        for row in fresh:
            self._remove(row.order_id)  # an order that moved here from another customer may be listed twice
            bisect.insort(self._rows, row, key=_sort_key)
            self._created[row.order_id] = row.created
            self.nbytes += row_bytes(row)
        self.version = max(self.version, version)

    def _remove(self, order_id: str) -> None:
        body = self.bodies.pop(order_id, None)
        if body is not None:
            self.nbytes -= len(body) + BODY_OVERHEAD_BYTES
        created = self._created.pop(order_id, None)
        if created is None:
            return
        position = bisect.bisect_left(self._rows, (created, order_id), key=_sort_key)
        row = self._rows.pop(position)
        self.nbytes -= row_bytes(row)

