"""One webhook call: the event POSTed as the Standard Webhooks specification describes, its answer or why
there was none. The signature is made by the specification's reference package (`standardwebhooks`)."""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from datetime import datetime, timezone

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from standardwebhooks import Webhook as Signer

from gateway.tracing import parse_traceparent
from gateway.webhook_guard import TargetRefused, check_address, check_literal_host, check_url

USER_AGENT = "order-gateway-webhooks"
MAX_ERROR_CHARS = 200


@dataclasses.dataclass(frozen=True)
class Call:
    url: str
    secret: str
    event_id: str
    body: bytes
    traceparent: str | None  # of the request that caused the event


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, could not connect)
    error: str | None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(call: Call, now: float) -> dict[str, str]:
    timestamp = int(now)
    signature = Signer(call.secret).sign(call.event_id, datetime.fromtimestamp(timestamp, timezone.utc),
                                         call.body.decode())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": call.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    trace = parse_traceparent(call.traceparent)
    if trace is not None:
        headers["traceparent"] = trace.child().header()
    return headers


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name any of whose addresses a webhook may not reach: the connection
    goes to the addresses checked here, not to a second lookup's."""

    def __init__(self, allow_private: bool) -> None:
        self._resolver = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            check_address(result["host"], self._allow_private)
        return results

    async def close(self) -> None:
        await self._resolver.close()


class Sender:
    """Calls webhooks through one connection pool whose resolver refuses what a webhook may not reach."""

    def __init__(self, timeout_seconds: float, allow_http: bool, allow_private: bool, connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._allow_http, self._allow_private = allow_http, allow_private
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(allow_private), limit=connections),
            timeout=self._timeout, trust_env=False, auto_decompress=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def send(self, call: Call) -> Answer:
        try:
            url = check_url(call.url, self._allow_http)
            check_literal_host(url, self._allow_private)
            async with self._session.post(url, data=call.body, headers=signed_headers(call, time.time()),
                                          allow_redirects=False) as response:
                return Answer(response.status, None)
        except TargetRefused as refused:
            return Answer(None, f"refused: {refused}")
        except asyncio.TimeoutError:
            return Answer(None, "timeout")
        except aiohttp.ClientConnectorError as failure:
            if isinstance(failure.__cause__, TargetRefused):
                return Answer(None, f"refused: {failure.__cause__}")
            return Answer(None, _short(f"cannot connect: {failure.os_error.strerror or failure.os_error}"))
        except (aiohttp.ClientError, OSError, UnicodeError, ValueError) as failure:
            # Whatever else the call raised (a name the resolver cannot encode, say) is a failed attempt too:
            # retried on the schedule and shown, never a delivery left claimed.
            return Answer(None, _short(f"{type(failure).__name__}: {failure}"))


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
