"""What both clients do alike with httpx: their options, the engine's requests turned into httpx calls, and
httpx's responses turned into the engine's answers. Only the calling itself (blocking or awaited) is theirs."""
from __future__ import annotations

from typing import Any

import httpx

from partner_orders_client.wire import Answer, Request

VERSION = "0.1.0"  # the distribution's, in client/pyproject.toml
USER_AGENT = f"partner-orders-client/{VERSION}"


def http_options(base_url: str, timeout: float) -> dict[str, Any]:
    """Keyword arguments of httpx.Client and httpx.AsyncClient. Redirects are not followed: the gateway
    sends none, and following one would send the credentials wherever it pointed."""
    return {
        "base_url": base_url,
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT},
        "follow_redirects": False,
    }


def request_arguments(request: Request) -> dict[str, Any]:
    """Keyword arguments of httpx's `request()` for one attempt."""
    return {"method": request.method, "url": request.target, "content": request.body, "headers": dict(request.headers)}


def answer_of(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.headers, response.content)
