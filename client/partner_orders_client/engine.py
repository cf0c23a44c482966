"""Every operation of the client, written once as a generator of the I/O it needs.

An operation yields `Send(request)` and gets back the `Reply`, yields `Sleep(seconds)` and gets back None,
and (for the iterators) yields `Emit(item)` for the caller. `Client` runs these generators with blocking
httpx calls and `time.sleep`, `AsyncClient` with awaited ones and `asyncio.sleep`: the token lifecycle,
retries, correlation ids, error reading and paging are the same code under both.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from partner_orders_client.errors import UnexpectedAnswer
from partner_orders_client.feed_position import FeedPosition
from partner_orders_client.queries import (
    Event, EventFilters, Fetched, HistoryFilters, Order, events_target, history_target, next_link, order_path,
)
from partner_orders_client.retry import RetryPolicy
from partner_orders_client.tokens import TokenKeeper
from partner_orders_client.wire import Answer, Reply, Request, api_error, api_request, json_object, refusal

T = TypeVar("T")
OK = frozenset({200, 201})
UNAUTHORIZED = 401
TOKEN_REFUSED = "4116"  # 401: the bearer token is not (or no longer) valid for this API key
NOT_MODIFIED = 304
DEFAULT_POLL_SECONDS = 2.0  # the gateway shows an event within 2 s of its change: polling faster finds nothing


@dataclass(frozen=True)
class Send:
    request: Request


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    item: dict[str, Any]


Action = Send | Sleep | Emit
Steps = Generator[Send | Sleep, Reply | None, T]  # one call: its result is the generator's return value
Stream = Generator[Action, Reply | None, None]  # an iteration: its items are the Emits


class Driver(Generic[T]):
    """Runs an operation for a client: `action` is what to do next (None once the operation has finished);
    the client does it (sends, sleeps, hands the item out) and passes what came of it to `resume`. The clients
    differ only in how they do an action."""

    def __init__(self, steps: Generator[Action, Reply | None, T]) -> None:
        self._steps = steps
        self._result: list[T] = []
        self.action: Action | None = None
        self.resume(None)

    def resume(self, reply: Reply | None) -> None:
        try:
            self.action = self._steps.send(reply)
        except StopIteration as done:
            self.action = None
            self._result.append(done.value)

    @property
    def result(self) -> T:
        if self.action is not None:
            raise RuntimeError("the operation has not finished")
        return self._result[0]


class Engine:
    """The client's state (credential, token, retry policy, the feed position) and its operations."""

    def __init__(self, api_key: str, client_secret: str, retry: RetryPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens = TokenKeeper(api_key, client_secret)
        self._retry = retry
        self._clock = clock
        self.events_cursor: str | None = None

    def get_order(self, customer_id: str, order_id: str) -> Steps[Order]:
        answer = yield from self.call(api_request("GET", order_path(customer_id, order_id)))
        return json_object(answer)

    def fetch_order(self, customer_id: str, order_id: str, if_none_match: str | None) -> Steps[Fetched]:
        return self._fetch(order_path(customer_id, order_id), if_none_match)

    def fetch_history_page(self, customer_id: str, offset: int, if_none_match: str | None,
                           filters: HistoryFilters) -> Steps[Fetched]:
        return self._fetch(history_target(customer_id, filters, offset), if_none_match)

    def place_order(self, customer_id: str, order: Mapping[str, Any], correlation_id: str | None) -> Steps[Order]:
        request = api_request("POST", order_path(customer_id), body=order, correlation_id=correlation_id)
        return json_object((yield from self.call(request)))

    def update_order(self, customer_id: str, order_id: str, external_reference_id: str,
                     correlation_id: str | None) -> Steps[Order]:
        body = {"externalReferenceId": external_reference_id}
        request = api_request("PATCH", order_path(customer_id, order_id), body=body, correlation_id=correlation_id)
        return json_object((yield from self.call(request)))

    def history(self, customer_id: str, filters: HistoryFilters) -> Stream:
        """Every order of the history, page after page, by the pages' own `links.next`."""
        target: str | None = history_target(customer_id, filters)
        followed: set[str] = set()
        while target is not None:
            followed.add(target)
            page = json_object((yield from self.call(api_request("GET", target))))
            for order in page.get("items", []):
                yield Emit(order)
            target = next_link(page)
            if target in followed:  # something other than the gateway: its pages would never end
                raise UnexpectedAnswer(f"links.next leads back to a page already read: {target}")

    def events(self, cursor: str | None, follow: bool, poll_interval: float, filters: EventFilters) -> Stream:
        """Events from a position on. `events_cursor` moves past each event as it is handed out, so a caller
        that saves it after handling an event resumes at the next one. Ends at a page shorter than its limit
        (the feed's current end), unless following: then polls every `poll_interval` seconds."""
        position = FeedPosition.parse(cursor)
        self.events_cursor = cursor
        while True:
            # Without a cursor, one event first: the cursor after it stays where it is, where "the oldest event
            # kept" moves on as the gateway purges, and a count of events from it would skip some.
            target = events_target(position.cursor, filters if position.cursor else {**filters, "limit": 1})
            page = json_object((yield from self.call(api_request("GET", target))))
            items: list[Event] = page.get("items", [])
            after_page = FeedPosition(_page_cursor(page), max(0, position.skip - len(items)))
            for index in range(position.skip, len(items)):
                handed_out = FeedPosition(position.cursor, index + 1) if index + 1 < len(items) else after_page
                self.events_cursor = str(handed_out)
                yield Emit(items[index])
            position = after_page
            self.events_cursor = str(position)
            if len(items) >= page.get("limit", len(items) + 1):
                continue  # a full page: the feed may go on right after it
            if not follow:
                return
            yield Sleep(poll_interval)

    def call(self, request: Request, accept: frozenset[int] = OK) -> Steps[Answer]:
        """One logical call: credentials on each attempt, one token renewal on `401 4116`, and the retry
        policy's bounded, jittered waits. Every attempt sends the same request (the same correlation id)."""
        renewed = False

        def attempt() -> Steps[Reply]:
            nonlocal renewed
            reply = yield from self._authorized(request)
            if not renewed and _token_refused(reply):
                renewed = True  # once per call: a token refused twice running is not a stale one
                reply = yield from self._authorized(request)
            return reply

        return (yield from self._retrying(attempt, lambda answer: answer.status in accept))

    def _authorized(self, request: Request) -> Steps[Reply]:
        token = yield from self._token()
        credentials = {"X-Api-Key": self._tokens.api_key, "Authorization": f"Bearer {token}"}
        reply = yield from _send(request.with_headers(**credentials))
        if _token_refused(reply):
            self._tokens.forget(token)
        return reply

    def _token(self) -> Steps[str]:
        token = self._tokens.current(self._clock())
        if token is not None:
            return token
        request = self._tokens.request()
        answer = yield from self._retrying(lambda: _send(request), lambda answer: answer.status == 200)
        return self._tokens.accept(answer, self._clock())

    def _retrying(self, attempt: Callable[[], Steps[Reply]], succeeded: Callable[[Answer], bool]) -> Steps[Answer]:
        retries = 0
        while True:
            reply = yield from attempt()
            if isinstance(reply, Answer) and succeeded(reply):
                return reply
            delay = self._retry.delay(reply, retries)
            if delay is None:
                raise refusal(reply, retries + 1)
            retries += 1
            yield Sleep(delay)

    def _fetch(self, target: str, if_none_match: str | None) -> Steps[Fetched]:
        request = api_request("GET", target)
        if if_none_match is not None:
            request = request.with_headers(**{"If-None-Match": if_none_match})
        answer = yield from self.call(request, accept=frozenset({200, NOT_MODIFIED}))
        body = None if answer.status == NOT_MODIFIED else json_object(answer)
        return Fetched(answer.headers.get("ETag"), body)


def _page_cursor(page: dict[str, Any]) -> str:
    cursor = page.get("cursor")
    if not isinstance(cursor, str) or not cursor:
        raise UnexpectedAnswer(f"feed page without a cursor: {sorted(page)}")
    return cursor


def _send(request: Request) -> Steps[Reply]:
    reply = yield Send(request)
    assert reply is not None, "a Send is answered with a Reply"
    return reply


def _token_refused(reply: Reply) -> bool:
    return isinstance(reply, Answer) and reply.status == UNAUTHORIZED and api_error(reply).code == TOKEN_REFUSED
