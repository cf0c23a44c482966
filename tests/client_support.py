"""What the client's tests run against: a real gateway process on loopback, seeded through its CLI, and a
proxy in front of it that refuses, delays or drops chosen requests the way a network or a busy gateway does.

The client does not depend on the storage backend, so its tests use SQLite only, and one gateway per module.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from conftest import cli, customer_record, order_record, reseller_record, seed_with_cli, server_process
from partner_orders_client import AsyncClient, Client, RetryPolicy

READS = "C1"  # imported history; no test writes to it
WRITES = "C2"  # the customer tests place orders for
FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)  # a test's retries, without long waits
LINE = {"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}
# Headers a forwarding proxy must not copy: they describe one connection or one encoding of the body.
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


def new_order(external_reference_id: str) -> dict[str, Any]:
    return {"orderType": "NEW", "currencyCode": "USD", "externalReferenceId": external_reference_id,
            "lineItems": [LINE]}


def history_records() -> list[dict[str, Any]]:
    """A second reseller of the partner, the writes' customer, and 30 orders of READS in every type and
    status, on two offers, some at the same second (the order's id breaks the tie)."""
    statuses, types = ["1000", "1002", "1004", "1008"], ["NEW", "RENEWAL", "TRANSFER"]
    records = [reseller_record("R2", "P1"), customer_record(WRITES, "R1")]
    for number in range(30):
        records.append(order_record(
            f"H{number:03d}", READS, f"2025-0{1 + number % 6}-{10 + number // 12:02d}T08:00:00Z",
            status=statuses[number % 4], order_type=types[number % 3],
            offers=["OFFER-A", "OFFER-B"][: 1 + number % 2], subscriptions=[f"SUB-{number % 5}"],
            reseller_id="R2" if number % 7 == 0 else None, external_reference_id=f"EXT-{number}",
        ))
    records.append(order_record("H900", READS, "2025-06-15T08:00:00Z", order_type="RETURN",
                                reference_order_id="H001"))
    return records


@dataclass(frozen=True)
class Gateway:
    url: str
    db_url: str
    api_key: str
    client_secret: str

    def client(self, url: str | None = None, **options: Any) -> Client:
        return Client(url or self.url, self.api_key, self.client_secret, **options)

    def async_client(self, url: str | None = None, **options: Any) -> AsyncClient:
        return AsyncClient(url or self.url, self.api_key, self.client_secret, **options)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway per test module (imported by each): starting one takes a few seconds."""
    with running_gateway(tmp_path_factory.mktemp("client")) as running:
        yield running


@pytest.fixture
def proxy(gateway: Gateway) -> Iterator[tuple[Proxy, str]]:
    """A proxy of its own per test, in front of the module's gateway; yields it and its URL."""
    scripted = Proxy(gateway.url)
    with scripted.serving() as url:
        yield scripted, url


@contextlib.contextmanager
def running_gateway(tmp: Path) -> Iterator[Gateway]:
    db_url = f"sqlite:///{tmp}/gateway.db"
    partner = seed_with_cli(db_url, tmp)
    data = tmp / "history.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(record) for record in history_records()))
    cli(db_url, "import", str(data))
    with server_process(db_url) as url:
        yield Gateway(url, db_url, partner["apiKey"], partner["clientSecret"])


class LoopbackServer:
    """An aiohttp application on 127.0.0.1 served from a thread of its own, so that synchronous and
    asynchronous clients alike can call it."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(app, access_log=None)

    def __enter__(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> str:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"


@dataclass
class Seen:
    """A request that reached the proxy, and what the client got back (None: nothing, dropped)."""

    method: str
    target: str
    headers: CIMultiDict[str]  # case-insensitive, as HTTP header names are
    at: float
    status: int | None = None


@dataclass
class _Refusal:
    status: int
    code: str
    retry_after: str | None
    method: str | None
    prefix: str


@dataclass
class Proxy:
    """Forwards to the gateway, except what a test scripted: refusals answered in its place, and requests
    forwarded to the gateway's /v3 (so the gateway executes them) whose answer is then dropped or delayed past the client's
    timeout. `token_lifetime` rewrites the token endpoint's `expires_in`."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    token_lifetime: float | None = None
    _refusals: list[_Refusal] = field(default_factory=list)
    _drops: list[str] = field(default_factory=list)
    _delays: list[tuple[str, float]] = field(default_factory=list)

    def refuse(self, times: int, status: int, code: str, *, retry_after: str | None = None,
               method: str | None = None, prefix: str = "/v3") -> None:
        self._refusals.extend([_Refusal(status, code, retry_after, method, prefix)] * times)

    def drop_after_forwarding(self, method: str) -> None:
        self._drops.append(method)

    def delay_after_forwarding(self, method: str, seconds: float) -> None:
        self._delays.append((method, seconds))

    def requests(self, method: str, prefix: str = "/v3") -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method and seen.target.startswith(prefix)]

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        app = web.Application()
        app.cleanup_ctx.append(self._session)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        with LoopbackServer(app) as url:
            yield url

    async def _session(self, app: web.Application) -> Any:
        async with aiohttp.ClientSession(self.upstream, auto_decompress=False) as session:
            self._http = session
            yield

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path_qs, CIMultiDict(request.headers), time.monotonic())
        self.seen.append(seen)
        refusal = self._take_refusal(request)
        if refusal is not None:
            seen.status = refusal.status
            return _refusal_answer(refusal)
        answer = await self._forward(request)
        scripted = request.path.startswith("/v3")  # drops and delays apply to API calls, not token requests
        if scripted and request.method in self._drops:
            self._drops.remove(request.method)
            assert request.transport is not None
            request.transport.abort()  # the gateway has executed it; the client gets no answer
            return answer
        for method, seconds in self._delays:
            if scripted and method == request.method:
                self._delays.remove((method, seconds))
                await asyncio.sleep(seconds)
                break
        seen.status = answer.status
        return answer

    def _take_refusal(self, request: web.Request) -> _Refusal | None:
        for refusal in self._refusals:
            if request.path.startswith(refusal.prefix) and refusal.method in (None, request.method):
                self._refusals.remove(refusal)
                return refusal
        return None

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP_BY_HOP}
        async with self._http.request(request.method, request.path_qs, headers=headers,
                                      data=await request.read()) as upstream:
            body = await upstream.read()
            if self.token_lifetime is not None and request.path.startswith("/ims/token"):
                body = orjson.dumps({**orjson.loads(body), "expires_in": self.token_lifetime})
            kept = {name: value for name, value in upstream.headers.items() if name.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=body, headers=kept)


def _refusal_answer(refusal: _Refusal) -> web.Response:
    headers = {"Retry-After": refusal.retry_after} if refusal.retry_after is not None else {}
    body = {"code": refusal.code, "message": "refused by the test's proxy", "additionalDetails": [],
            "invalidFields": []}
    return web.json_response(body, status=refusal.status, headers=headers)
