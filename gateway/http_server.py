"""The HTTP server under the application: aiohttp's, with the API's answer to requests it cannot parse.

A request aiohttp's parser refuses (a line over the limits, too many headers, a bad request line, an
encoding it cannot decode), or whose head does not arrive in time, never reaches a middleware: aiohttp
answers it in RequestHandler.handle_error, in plain text quoting the offending bytes, and logs them. handle_error is the method aiohttp provides for this
("Handle errors. Returns HTTP response with specific status code"); aiohttp has no setting for the handler
class, so a Server subclass builds ours, and a runner builds that server in `_make_server`, the factory
method BaseRunner leaves to its subclasses. web.run_app cannot take a runner, so `serve` does what it does:
set up, listen, wait for SIGTERM or SIGINT, and clean up (in-flight requests finish within the timeout).
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler, _ErrInfo, _RequestFactory
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.cli_common import listen_failure
from gateway.errors import INTERNAL_ERROR, ApiError
from gateway.http_limits import MAX_HEAD_KEPT, PARSER_LIMITS, Capacity, HeadTimeout, HeadTooLarge, client_ids
from gateway.http_limits import head_over_limit, ids_without_controls, only_head, refusal
from gateway.keys import CAPACITY, METRICS, SETTINGS
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.version import VERSION
from middleware.errors import error_response
from middleware.request_log import log_refusal, new_request_id

# web.run_app's default: how long an idle keep-alive connection is kept.
KEEPALIVE_SECONDS = 75.0

log = structlog.get_logger("gateway.server")
Listening = Callable[[web.Application, str], Awaitable[None]]  # the app and its base URL, once bound


class _RefusingHandler(RequestHandler):
    # Set by the server that builds it: kept here, as the connection may drop its server.
    metrics: Metrics
    head_timeout: float  # the body timeout's seconds, for a request line and header fields to arrive
    _head_deadline: asyncio.TimerHandle | None = None
    _head_so_far = b""  # what came of a head still arriving, so that a field split across reads is seen whole
    _head_refused = False  # its answer is on its way, and the connection closes after it: nothing more is read
    _refused_ids: tuple[str | None, str | None] = (None, None)  # what a refused head said its ids were

    def data_received(self, data: bytes) -> None:
        if self._head_refused:
            return
        if self._waiting_for_head():
            self._receive_head(data)
        elif (self._force_close or self._close) and self._request_in_progress:
            self._receive_while_stopping(data)
        else:
            super().data_received(data)
        self._time_the_head(data)

    def _receive_while_stopping(self, data: bytes) -> None:
        """After SIGTERM aiohttp drops every byte that arrives (`_close`, then `_force_close`), the rest of a
        body still arriving included: the request waited for it until the body timeout, and the process with
        it. In-flight requests finish, so the request in progress still gets its body; none after it is served."""
        closing = self._close, self._force_close
        self._close = self._force_close = False
        try:
            super().data_received(data)
        finally:
            self._close, self._force_close = closing

    def _receive_head(self, data: bytes) -> None:
        """Looking at the head as it has arrived so far: header fields over the limit as sent are refused
        (http_limits.head_over_limit); and, as the parser refuses a whole request over a control character in
        any header value, such characters in the two ids' values are made refusable first
        (http_limits.ids_without_controls, which keeps every byte's place)."""
        arrived = self._head_so_far + data
        cleaned = ids_without_controls(arrived)
        oversized = head_over_limit(arrived)
        if oversized is not None:
            # The requests pipelined ahead of it are served first; it is answered after them.
            if oversized > len(self._head_so_far):
                super().data_received(cleaned[len(self._head_so_far) : oversized])
            self._refuse_head(HeadTooLarge(message=HeadTooLarge.MESSAGE), cleaned[oversized:])
            return
        super().data_received(cleaned[len(self._head_so_far) :])
        if self._messages and isinstance(self._messages[-1][0], _ErrInfo):  # the parser refused a head
            self._refused_ids = client_ids(only_head(cleaned))
        still_arriving = self._waiting_for_head() and len(arrived) <= MAX_HEAD_KEPT
        # Kept without the empty lines before it, which the parser skips: a flood of them, a byte per read,
        # had every read look through all of them again.
        self._head_so_far = arrived.lstrip(b"\r\n") if still_arriving else b""

    def _time_the_head(self, data: bytes) -> None:
        """aiohttp does not bound how long a request's head may take to arrive: a client sending a byte of it
        now and then kept its connection until the keep-alive timeout, counted from the connection's start,
        closed it without an answer. The first bytes of a head start a deadline, which the complete head
        cancels: past it, the request is answered 408 and the connection closed, as for a body too slow. Empty
        lines do not start it: the parser skips them before a request (RFC 9112 2.2), and some clients send
        one after a body; an idle connection must get nothing it did not ask for."""
        waiting_for_head = self._waiting_for_head()
        if waiting_for_head and self._head_deadline is None and data.strip(b"\r\n"):
            self._head_deadline = self._loop.call_later(self.head_timeout, self._head_expired)
        elif not waiting_for_head and self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _waiting_for_head(self) -> bool:
        """Between requests, the next one's bytes coming in (aiohttp waits for its head on `_waiter`): not
        while a request is handled, nor while one parsed is about to be, nor while a body is still read."""
        waiting = self._waiter is not None and not self._waiter.done()
        return waiting and not self._messages and not self._force_close

    def _head_expired(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head():
            self._refuse_head(HeadTimeout(message=HeadTimeout.MESSAGE), ids_without_controls(self._head_so_far))

    def _refuse_head(self, refused: HttpProcessingError, head: bytes) -> None:
        """Answered the way aiohttp answers a request its parser refused (handle_error, below): an error in
        place of the request, for the loop waiting on `_waiter` to take. `head`: its bytes, the ids' control
        characters made refusable."""
        self._head_refused = True
        self._refused_ids = client_ids(head)
        self._messages.append((_ErrInfo(status=refused.code, exc=refused, message=refused.message), EMPTY_PAYLOAD))
        if self._waiter is not None and not self._waiter.done():  # else requests ahead of it woke the loop
            self._waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """After an answer, aiohttp reads what is left of an unread body ("lingering close"); a body the client
        broke (bad chunking or compression) fails that read again, and aiohttp logs it as an unhandled
        exception and closes the connection. The answer is out: it is the client's fault, not a server error."""
        if isinstance(kw.get("exc_info"), web.RequestPayloadError):
            self.log_debug(*args, **kw)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Called for a request the parser refused (exc an HttpProcessingError), or for an exception that
        escaped the application (the error middleware lets none but cancellation through)."""
        if request.writer.output_size > 0:
            # As aiohttp: part of an answer is out, no other can follow; the connection is dropped.
            raise ConnectionError("Response is sent already")
        error = refusal(exc) if isinstance(exc, HttpProcessingError) else ApiError(INTERNAL_ERROR)
        sent_id, correlation_id = self._refused_ids if isinstance(exc, HttpProcessingError) else (None, None)
        request_id = sent_id or new_request_id()
        response = error_response(error)
        response.headers["X-Request-Id"] = request_id
        if correlation_id is not None:
            response.headers["X-Correlation-Id"] = correlation_id
        response.force_close()
        log_refusal(self.metrics, error.status, error.code, request_id, request.remote, correlation_id)
        return response


CONTINUE = "100-continue"


def _expectations_met(factory: _RequestFactory, capacity: Capacity) -> _RequestFactory:
    """aiohttp answers an `Expect` other than `100-continue` before any middleware: 417, in plain text quoting
    the value, without X-Request-Id or a log line. RFC 9110 10.1.1 lets a server ignore an expectation it
    does not know (a 417 is a MAY): the request is made as if only `100-continue` had been asked, if it was.
    Nor is that one met (aiohttp would send `100 Continue` before any middleware) while the process serves
    all the requests it may (middleware.capacity): the body it invites would be refused. The parsed message
    is rebuilt rather than the request cloned: a clone encodes every header value again, and one that is not
    UTF-8 cannot be."""

    def make(message: RawRequestMessage, *args: Any) -> web.BaseRequest:
        # (The stand-in message of a request the parser refused has a plain dict of no headers.)
        values = message.headers.getall(hdrs.EXPECT) if hdrs.EXPECT in message.headers else []
        asked = {part.strip().lower() for value in values for part in value.split(",")}
        met = {CONTINUE} & asked if capacity.serving < capacity.limit else set()
        if asked != met:
            headers = CIMultiDict(message.headers)
            headers.popall(hdrs.EXPECT)
            raw = [line for line in message.raw_headers if line[0].lower() != b"expect"]
            if met:
                headers.add(hdrs.EXPECT, CONTINUE)
                raw.append((b"Expect", CONTINUE.encode()))
            message = message._replace(headers=CIMultiDictProxy(headers), raw_headers=tuple(raw))
        return factory(message, *args)

    return make


class _GatewayServer(web.Server):
    def __init__(self, built: web.Server, metrics: Metrics, head_timeout: float, capacity: Capacity) -> None:
        """The server AppRunner built, with our handler: the same request handler, factory (meeting only the
        expectations it may) and arguments (Server keeps the handler arguments and loop in private attributes,
        which its subclass reads)."""
        super().__init__(built.request_handler, request_factory=_expectations_met(built.request_factory, capacity),
                         handler_cancellation=built.handler_cancellation, loop=built._loop, **built._kwargs)
        self.metrics, self.head_timeout = metrics, head_timeout

    def __call__(self) -> RequestHandler:
        handler = _RefusingHandler(self, loop=self._loop, **self._kwargs)
        handler.metrics, handler.head_timeout = self.metrics, self.head_timeout
        return handler


class _GatewayRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        return _GatewayServer(await super()._make_server(), self.app[METRICS],
                              self.app[SETTINGS].body_timeout_seconds, self.app[CAPACITY])


def serve_app(app: web.Application, settings: Settings, on_listening: Listening | None = None,
              reuse_port: bool = False) -> None:
    """Serves until SIGTERM or SIGINT. `on_listening` runs once the port is bound; `reuse_port` lets several
    processes listen on one port (`serve --workers`)."""
    asyncio.run(_serve(app, settings, on_listening, reuse_port))


# The history cache holds hundreds of thousands of long-lived objects, and every full collection of the
# cyclic garbage collector walks them all: about 95 ms during which no request is served (bench/mixed.py
# saw one every 4 s, at CPython's default of a young collection every 700 allocations). A young collection
# every 20,000 makes full ones rare; what startup built (modules, the app) is left out of them altogether.
GC_THRESHOLDS = (20_000, 10, 10)


def _tune_garbage_collector() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(app: web.Application, settings: Settings, on_listening: Listening | None,
                 reuse_port: bool) -> None:
    handler_args: dict[str, Any] = {"keepalive_timeout": KEEPALIVE_SECONDS, "access_log": None, **PARSER_LIMITS}
    runner = _GatewayRunner(app, shutdown_timeout=settings.shutdown_timeout_seconds, **handler_args)
    await runner.setup()
    _tune_garbage_collector()
    listened = False
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as failure:
            raise listen_failure(failure, settings.host, settings.port) from None
        port = runner.addresses[0][1] if runner.addresses else settings.port
        host = f"[{settings.host}]" if ":" in settings.host else settings.host  # an IPv6 address
        base = f"http://{host}:{port}"
        log.info("listening", address=base, version=VERSION, pid=os.getpid(),
                 database=settings.database_url.split(":", 1)[0])
        listened = True
        if on_listening is not None:
            await on_listening(app, base)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        if listened:
            log.info("stopped", pid=os.getpid())
