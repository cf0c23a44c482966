"""Order history: query parsing, the per-customer order index cache, filtering and paging.

Counting and skipping in SQL cost time proportional to the customer's order count (COUNT(*) and OFFSET
walk the index), so the gateway keeps, per (customer, partner), the customer's orders sorted the way pages
are served: a date window is two binary searches, an offset is a list index. Each entry is tagged with the
customer's `version`, which every write to the customer's orders moves in the same transaction, and every
request reads the current version first: a cached page is never stale, whichever process wrote.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlencode

import orjson
from dateutil.relativedelta import relativedelta

from gateway.errors import ApiError
from gateway.orders import link, orders_uri
from gateway.storage import IndexRow, Storage
from schemas.history import HistoryQuery


def term_start(coterm_date: str | None) -> int | None:
    """The current term starts a calendar year before the coterm date (29 February -> 28 February)."""
    if not coterm_date:
        return None
    start = date.fromisoformat(coterm_date) - relativedelta(years=1)
    return int(datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp())


@dataclasses.dataclass
class _Entry:
    version: int
    rows: list[IndexRow]  # newest first; ties by order id, descending
    keys: list[int]  # -created of each row, ascending: what bisect searches
    bodies: dict[str, bytes]


class HistoryService:
    def __init__(self, storage: Storage, max_cached_orders: int) -> None:
        self._storage = storage
        self._max_cached = max_cached_orders
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._cached_orders = 0

    async def page(self, partner_id: str, customer_id: str, query: HistoryQuery, now: float | None = None) -> bytes:
        """The history page as JSON bytes; ApiError 1116 when the partner cannot see the customer."""
        scope = await self._storage.customer_scope(customer_id, partner_id)
        if scope is None:
            raise ApiError("1116")
        entry = await self._entry(customer_id, partner_id, scope.version)
        low = math.ceil(query.start) if query.start is not None else term_start(scope.coterm_date)
        high = math.floor(query.end) if query.end is not None else int(time.time() if now is None else now)
        first = 0 if high is None else bisect.bisect_left(entry.keys, -high)
        last = len(entry.keys) if low is None else bisect.bisect_right(entry.keys, -low)
        rows: Sequence[IndexRow] = entry.rows[first:last] if first < last else []
        test = query.predicate()
        if test is not None:
            rows = [row for row in rows if test(row)]
        total = len(rows)
        if query.offset > total:
            raise ApiError("1133", details=[f"offset {query.offset} is greater than totalCount {total}"],
                           fields=["offset"])
        page_rows = rows[query.offset : query.offset + query.limit]
        bodies = await self._bodies(entry, [row.order_id for row in page_rows])
        return _render_page(customer_id, query, total, bodies)

    async def _entry(self, customer_id: str, partner_id: str, version: int) -> _Entry:
        key = (customer_id, partner_id)
        entry = self._cache.get(key)
        if entry is not None and entry.version == version:
            self._cache.move_to_end(key)
            return entry
        rows = await self._storage.order_index(customer_id, partner_id)
        rows.sort(key=lambda row: (row.created, row.order_id), reverse=True)
        entry = _Entry(version, rows, [-row.created for row in rows], {})
        self._remember(key, entry)
        return entry

    def _remember(self, key: tuple[str, str], entry: _Entry) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_orders -= len(old.rows)
        if len(entry.rows) > self._max_cached:
            return
        self._cache[key] = entry
        self._cached_orders += len(entry.rows)
        while self._cached_orders > self._max_cached:
            _, evicted = self._cache.popitem(last=False)
            self._cached_orders -= len(evicted.rows)

    async def _bodies(self, entry: _Entry, order_ids: list[str]) -> list[bytes]:
        missing = [order_id for order_id in order_ids if order_id not in entry.bodies]
        if missing:
            entry.bodies.update(await self._storage.order_bodies(missing))
        return [entry.bodies[order_id] for order_id in order_ids if order_id in entry.bodies]


def _page_uri(customer_id: str, query: HistoryQuery, offset: int) -> str:
    pairs = [*query.echo, ("offset", str(offset)), ("limit", str(query.limit))]
    return f"{orders_uri(customer_id)}?{urlencode(pairs)}"


def _render_page(customer_id: str, query: HistoryQuery, total: int, bodies: list[bytes]) -> bytes:
    links: dict[str, Any] = {"self": link(_page_uri(customer_id, query, query.offset))}
    if query.offset + query.limit < total:
        links["next"] = link(_page_uri(customer_id, query, query.offset + query.limit))
    if query.offset > 0:
        links["prev"] = link(_page_uri(customer_id, query, max(0, query.offset - query.limit)))
    head = b'{"totalCount":%d,"count":%d,"offset":%d,"limit":%d,"items":[' % (
        total, len(bodies), query.offset, query.limit
    )
    # Stored bodies are already the encoded order resources: the page is spliced, not re-encoded.
    return head + b",".join(bodies) + b'],"links":' + orjson.dumps(links) + b"}"
