"""Order history pages: from a byte-bounded cache of customer indexes (gateway.history_index), or from SQL.

Every request reads the customer's current `version` first (every write to its orders moves it, in the
write's transaction). A cached index at that version or later serves the page; an older one is refreshed
in place from the change journal (just the orders that changed), or reloaded when the journal cannot say.
So a cached page is never stale, whichever process wrote, and a write costs the next read one small query.
"""
from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlencode

import orjson
from cachetools import LRUCache
from dateutil.relativedelta import relativedelta
from multidict import MultiMapping

from gateway import contract
from gateway.errors import ApiError
from gateway.order_model import link, orders_uri
from gateway.history_index import CustomerIndex
from gateway.storage import CustomerScope, IndexRow, Storage
from gateway.storage.wait_budget import charge
from schemas.history import HistoryQuery

REFRESH_ATTEMPTS = 3
_FAILED = CustomerIndex(-1, [])  # the outcome of a refresh that failed: whoever waited for it tries again
# Before loading a customer: what a row is assumed to take (typical rows take about 400 bytes); one whose
# real index then proves too large is remembered, and paged in SQL without being loaded again.
ASSUMED_ROW_BYTES = 450
OVERSIZED_REMEMBERED = 10_000
EVERY_ORDER = HistoryQuery()  # no filter
# Integrations page with the same few queries over and over: each is validated once, then remembered.
PARSED_QUERIES = 4096
MAX_REMEMBERED_QUERY = 1024  # characters; longer query strings are validated every time


@functools.lru_cache(maxsize=4096)  # customers share a few coterm dates, and every page asks
def term_start(coterm_date: str | None) -> int | None:
    """The current term starts a calendar year before the coterm date (29 February -> 28 February)."""
    if not coterm_date:
        return None
    try:
        start = date.fromisoformat(coterm_date) - relativedelta(years=1)
    except (ValueError, OverflowError):  # a coterm date in year 1: its term began before any date there is
        return None
    return int(datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp())


class HistoryService:
    """History pages from a byte-bounded cache of customer indexes, refreshed in place after writes; from SQL
    for customers too large for the cache, or when it is off (`cache_bytes` 0)."""

    def __init__(self, storage: Storage, cache_bytes: int) -> None:
        self._storage = storage
        self._cache: LRUCache[tuple[str, str], CustomerIndex] | None = (
            LRUCache(maxsize=cache_bytes, getsizeof=_index_bytes) if cache_bytes > 0 else None
        )
        # An index may take at most this much, so one huge customer cannot empty the cache for everyone.
        self._entry_budget = cache_bytes // 2
        self._refreshing: dict[tuple[str, str], asyncio.Future[CustomerIndex | None]] = {}
        self._oversized: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=OVERSIZED_REMEMBERED)
        self._queries: LRUCache[str, HistoryQuery] = LRUCache(maxsize=PARSED_QUERIES)

    def query(self, query_string: str, params: MultiMapping[str]) -> HistoryQuery:
        """The validated query (ApiError 1132 for a bad one), from the request contract or its memory;
        `query_string` as sent (percent-encoded)."""
        query = self._queries.get(query_string)
        if query is None:
            query = contract.history_query(params, query_string)
            if len(query_string) <= MAX_REMEMBERED_QUERY:
                self._queries[query_string] = query
        return query

    async def page(self, partner_id: str, customer_id: str, query: HistoryQuery, now: float | None = None) -> bytes:
        """The history page as JSON bytes; ApiError 1116 when the partner cannot see the customer."""
        scope = await self._storage.customer_scope(customer_id, partner_id)
        if scope is None:
            raise ApiError("1116")
        low = math.ceil(query.start) if query.start is not None else term_start(scope.coterm_date)
        high = math.floor(query.end) if query.end is not None else int(time.time() if now is None else now)
        index = await self._current(scope, partner_id)
        if index is None:
            total, bodies = await self._from_sql(scope.customer_id, partner_id, query, low, high)
        else:
            total, bodies = await self._from_index(index, (customer_id, partner_id), query, low, high)
        return _render_page(customer_id, query, total, bodies)

    async def _from_index(self, index: CustomerIndex, key: tuple[str, str], query: HistoryQuery,
                          low: int | None, high: int | None) -> tuple[int, list[bytes]]:
        first, last = index.window(low, high)
        tests = query.tests()
        if not tests:
            total = last - first
            _check_offset(query.offset, total)
            rows = index.page(first, last, query.offset, query.limit)
        else:
            candidates: Iterable[IndexRow] = index.newest_first(first, last)
            for test in tests:
                candidates = filter(test, candidates)
            matched = list(candidates)
            total = len(matched)
            _check_offset(query.offset, total)
            rows = matched[query.offset : query.offset + query.limit]
        return total, await self._bodies(index, key, [row.order_id for row in rows])

    async def _from_sql(self, customer_id: str, partner_id: str, query: HistoryQuery,
                        low: int | None, high: int | None) -> tuple[int, list[bytes]]:
        empty = low is not None and high is not None and low > high  # nothing to ask the database
        total = 0 if empty else await self._storage.count_orders(customer_id, partner_id, query, (low, high))
        _check_offset(query.offset, total)
        if query.offset == total:
            return total, []
        return total, await self._storage.page_bodies(customer_id, partner_id, query, (low, high), query.offset,
                                                      query.limit)

    async def _current(self, scope: CustomerScope, partner_id: str) -> CustomerIndex | None:
        """The customer's index as of `scope.version` or later; None when it is not to be cached."""
        if self._cache is None:
            return None
        key = (scope.customer_id, partner_id)
        for _ in range(REFRESH_ATTEMPTS):
            index = self._cache.get(key)
            if index is not None and index.version >= scope.version:
                return index
            # However many requests ask at once, one refresh (or load) runs; the others wait for it.
            running = self._refreshing.get(key)
            if running is None:
                index = await self._lead_refresh(key, scope, index)
            else:
                queued = asyncio.get_running_loop().time()
                index = await asyncio.shield(running)
                if index is _FAILED:
                    charge(asyncio.get_running_loop().time() - queued)  # the load it waited for gave up
            if index is not _FAILED and (index is None or index.version >= scope.version):
                return index
        return None  # writes kept overtaking the refresh: answer from SQL this once

    async def _lead_refresh(self, key: tuple[str, str], scope: CustomerScope,
                            index: CustomerIndex | None) -> CustomerIndex | None:
        """Runs the refresh in this request, not in a task of its own, which would wait for the event loop's
        next turn (on a busy process, the time to serve every other request that is ready): on SQLite, where
        it reads inline, it does not wait at all. Requests that ask meanwhile wait for its outcome; if it
        fails (or its request is cancelled), they try again themselves."""
        outcome: asyncio.Future[CustomerIndex | None] = asyncio.get_running_loop().create_future()
        self._refreshing[key] = outcome
        try:
            fresh = await self._refresh(key, scope, index)
        except BaseException:
            outcome.set_result(_FAILED)
            raise
        finally:
            del self._refreshing[key]
        outcome.set_result(fresh)
        return fresh

    async def _refresh(self, key: tuple[str, str], scope: CustomerScope,
                       index: CustomerIndex | None) -> CustomerIndex | None:
        customer_id, partner_id = key
        if index is not None:
            changes = await self._storage.changes_since(customer_id, index.version, scope.version)
            if not changes.everything:
                fresh = await self._storage.order_index_of(customer_id, partner_id, sorted(changes.order_ids))
                index.refresh(changes.version, changes.order_ids, fresh)
                return self._keep(key, index)
        if key in self._oversized:
            return None
        count = await self._storage.count_orders(customer_id, partner_id, EVERY_ORDER)
        if count * ASSUMED_ROW_BYTES > self._entry_budget:
            self._forget(key)
            return None
        rows = await self._storage.order_index(customer_id, partner_id)
        return self._keep(key, CustomerIndex(scope.version, rows))

    def _keep(self, key: tuple[str, str], index: CustomerIndex) -> CustomerIndex | None:
        """(Re)stores the index under its current size, evicting the least recently used others."""
        assert self._cache is not None
        if index.nbytes > self._entry_budget:
            self._forget(key)
            self._oversized[key] = True
            return None
        self._cache[key] = index
        return index

    def _forget(self, key: tuple[str, str]) -> None:
        if self._cache is not None:
            self._cache.pop(key, None)

    async def _bodies(self, index: CustomerIndex, key: tuple[str, str], order_ids: list[str]) -> list[bytes]:
        missing = [order_id for order_id in order_ids if order_id not in index.bodies]
        if not missing:
            return [index.bodies[order_id] for order_id in order_ids]
        version = index.version
        fetched = await self._storage.order_bodies(missing)
        # Bodies read before a refresh of this index may be older than it: use them, do not keep them.
        if index.version == version and index.nbytes + sum(map(len, fetched.values())) <= self._entry_budget:
            for order_id, body in fetched.items():
                index.add_body(order_id, body)
            self._keep(key, index)
        bodies = (fetched.get(order_id) or index.bodies.get(order_id) for order_id in order_ids)
        return [body for body in bodies if body is not None]


def _index_bytes(index: CustomerIndex) -> int:
    return index.nbytes


def _check_offset(offset: int, total: int) -> None:
    if offset > total:
        raise ApiError("1133", details=[f"offset {offset} is greater than totalCount {total}"], fields=["offset"])


def _render_page(customer_id: str, query: HistoryQuery, total: int, bodies: list[bytes]) -> bytes:
    # The client's own parameters are encoded once; each link adds its page's offset and limit.
    prefix = f"{orders_uri(customer_id)}?{urlencode(query.echo)}{'&' if query.echo else ''}"

    def page(offset: int) -> dict[str, Any]:
        return link(f"{prefix}offset={offset}&limit={query.limit}")

    links: dict[str, Any] = {"self": page(query.offset)}
    if query.offset + query.limit < total:
        links["next"] = page(query.offset + query.limit)
    if query.offset > 0:
        links["prev"] = page(max(0, query.offset - query.limit))
    head = b'{"totalCount":%d,"count":%d,"offset":%d,"limit":%d,"items":[' % (
        total, len(bodies), query.offset, query.limit
    )
    # Stored bodies are already the encoded order resources: the page is spliced, not re-encoded.
    return head + b",".join(bodies) + b'],"links":' + orjson.dumps(links) + b"}"
