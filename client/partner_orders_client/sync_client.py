"""`Client`: the operations of engine.py over blocking httpx calls."""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from partner_orders_client.engine import DEFAULT_POLL_SECONDS, Action, Driver, Emit, Engine, Send, Sleep, Steps, Stream
from partner_orders_client.queries import Event, EventFilters, Fetched, HistoryFilters, Order
from partner_orders_client.retry import RetryPolicy
from partner_orders_client.transport import answer_of, http_options, request_arguments
from partner_orders_client.wire import Failure, Reply

T = TypeVar("T")


class Client:
    """A partner's connection to the gateway. Use it as a context manager (or call `close()`); one client
    serves a whole integration: it keeps the token and the connections between calls."""

    def __init__(self, base_url: str, api_key: str, client_secret: str, *, retry: RetryPolicy | None = None,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._engine = Engine(api_key, client_secret, retry or RetryPolicy())
        self._http = httpx.Client(transport=transport, **http_options(base_url, timeout))

    @property
    def events_cursor(self) -> str | None:
        """Where the latest `events()` iteration stands: pass it as `cursor=` to resume after the last event
        it handed out."""
        return self._engine.events_cursor

    def history(self, customer_id: str, **filters: Unpack[HistoryFilters]) -> Iterator[Order]:
        """Every order of the customer's history that matches the filters, newest first."""
        return self._iterate(self._engine.history(customer_id, filters))

    def fetch_history_page(self, customer_id: str, *, offset: int = 0, if_none_match: str | None = None,
                           **filters: Unpack[HistoryFilters]) -> Fetched:
        """One page of history with its ETag; `not_modified` when `if_none_match` is still its tag."""
        return self._run(self._engine.fetch_history_page(customer_id, offset, if_none_match, filters))

    def get_order(self, customer_id: str, order_id: str) -> Order:
        return self._run(self._engine.get_order(customer_id, order_id))

    def fetch_order(self, customer_id: str, order_id: str, *, if_none_match: str | None = None) -> Fetched:
        """The order with its ETag; `not_modified` (no body) when `if_none_match` is still its tag."""
        return self._run(self._engine.fetch_order(customer_id, order_id, if_none_match))

    def place_order(self, customer_id: str, order: Mapping[str, Any], *, correlation_id: str | None = None) -> Order:
        """Places (or previews) an order, retrying safely: every attempt has the same correlation id."""
        return self._run(self._engine.place_order(customer_id, order, correlation_id))

    def update_order(self, customer_id: str, order_id: str, *, external_reference_id: str,
                     correlation_id: str | None = None) -> Order:
        return self._run(self._engine.update_order(customer_id, order_id, external_reference_id, correlation_id))

    def events(self, cursor: str | None = None, *, follow: bool = False, poll_interval: float = DEFAULT_POLL_SECONDS,
               **filters: Unpack[EventFilters]) -> Iterator[Event]:
        """The partner's order events after `cursor` (from the oldest kept without one), oldest first."""
        return self._iterate(self._engine.events(cursor, follow, poll_interval, filters))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _run(self, steps: Steps[T]) -> T:
        driver = Driver(steps)
        while driver.action is not None:
            driver.resume(self._perform(driver.action))
        return driver.result

    def _iterate(self, stream: Stream) -> Iterator[dict[str, Any]]:
        driver = Driver(stream)
        while driver.action is not None:
            if isinstance(driver.action, Emit):
                yield driver.action.item
            driver.resume(self._perform(driver.action))

    def _perform(self, action: Action) -> Reply | None:
        """The reply to a Send, None after a Sleep or an Emit."""
        if isinstance(action, Send):
            try:
                return answer_of(self._http.request(**request_arguments(action.request)))
            except httpx.TransportError as error:
                return Failure(error)
        if isinstance(action, Sleep):
            time.sleep(action.seconds)
        return None
