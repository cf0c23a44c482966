"""`AsyncClient`: the operations of engine.py over awaited httpx calls; the same methods as `Client`."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from partner_orders_client.engine import DEFAULT_POLL_SECONDS, Action, Driver, Emit, Engine, Send, Sleep, Steps, Stream
from partner_orders_client.queries import Event, EventFilters, Fetched, HistoryFilters, Order
from partner_orders_client.retry import RetryPolicy
from partner_orders_client.transport import answer_of, http_options, request_arguments
from partner_orders_client.wire import Failure, Reply

T = TypeVar("T")


class AsyncClient:
    """`Client` for asyncio code: each method is awaited (the iterators are `async for`). Tasks may share
    one client; its token is fetched by whichever task first finds it missing."""

    def __init__(self, base_url: str, api_key: str, client_secret: str, *, retry: RetryPolicy | None = None,
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._engine = Engine(api_key, client_secret, retry or RetryPolicy())
        self._http = httpx.AsyncClient(transport=transport, **http_options(base_url, timeout))

    @property
    def events_cursor(self) -> str | None:
        """Where the latest `events()` iteration stands (see `Client.events_cursor`)."""
        return self._engine.events_cursor

    def history(self, customer_id: str, **filters: Unpack[HistoryFilters]) -> AsyncIterator[Order]:
        return self._iterate(self._engine.history(customer_id, filters))

    async def fetch_history_page(self, customer_id: str, *, offset: int = 0, if_none_match: str | None = None,
                                 **filters: Unpack[HistoryFilters]) -> Fetched:
        return await self._run(self._engine.fetch_history_page(customer_id, offset, if_none_match, filters))

    async def get_order(self, customer_id: str, order_id: str) -> Order:
        return await self._run(self._engine.get_order(customer_id, order_id))

    async def fetch_order(self, customer_id: str, order_id: str, *, if_none_match: str | None = None) -> Fetched:
        return await self._run(self._engine.fetch_order(customer_id, order_id, if_none_match))

    async def place_order(self, customer_id: str, order: Mapping[str, Any], *,
                          correlation_id: str | None = None) -> Order:
        return await self._run(self._engine.place_order(customer_id, order, correlation_id))

    async def update_order(self, customer_id: str, order_id: str, *, external_reference_id: str,
                           correlation_id: str | None = None) -> Order:
        steps = self._engine.update_order(customer_id, order_id, external_reference_id, correlation_id)
        return await self._run(steps)

    def events(self, cursor: str | None = None, *, follow: bool = False, poll_interval: float = DEFAULT_POLL_SECONDS,
               **filters: Unpack[EventFilters]) -> AsyncIterator[Event]:
        return self._iterate(self._engine.events(cursor, follow, poll_interval, filters))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def _run(self, steps: Steps[T]) -> T:
        driver = Driver(steps)
        while driver.action is not None:
            driver.resume(await self._perform(driver.action))
        return driver.result

    async def _iterate(self, stream: Stream) -> AsyncIterator[dict[str, Any]]:
        driver = Driver(stream)
        while driver.action is not None:
            if isinstance(driver.action, Emit):
                yield driver.action.item
            driver.resume(await self._perform(driver.action))

    async def _perform(self, action: Action) -> Reply | None:
        """The reply to a Send, None after a Sleep or an Emit."""
        if isinstance(action, Send):
            try:
                return answer_of(await self._http.request(**request_arguments(action.request)))
            except httpx.TransportError as error:
                return Failure(error)
        if isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
        return None
