"""What both clients configure alike on their httpx client."""
from __future__ import annotations

from typing import Any

DEFAULT_POLL_SECONDS = 2.0  # the gateway shows an event within 2 s of its change: polling faster finds nothing
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
