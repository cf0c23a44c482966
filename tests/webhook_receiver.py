"""A webhook receiver on loopback that the tests start themselves: it records every call (headers, body,
arrival time) and answers what the test tells it to."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

# What to answer a call: a status (with optional headers), after an optional delay in seconds.
Reply = tuple[int, dict[str, str], float]
OK: Reply = (204, {}, 0.0)


@dataclasses.dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float


@dataclasses.dataclass
class Receiver:
    url: str  # base URL, no trailing slash
    calls: list[Call]
    answer: Callable[[Call], Reply]

    def at(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[Call]:
        """The calls (to `path`) once there are at least `count` of them; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls if path is None else self.at(path)
            if len(calls) >= count:
                return calls
            assert time.monotonic() < deadline, f"{len(calls)} of {count} calls after {timeout} s"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def receiver(answer: Callable[[Call], Reply] = lambda call: OK) -> AsyncIterator[Receiver]:
    got = Receiver("", [], answer)

    async def handle(request: web.Request) -> web.StreamResponse:
        call = Call(request.path, dict(request.headers), await request.read(), time.monotonic())
        got.calls.append(call)
        status, headers, delay = got.answer(call)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    got.url = f"http://127.0.0.1:{port}"
    try:
        yield got
    finally:
        await runner.cleanup()
