"""Wire-level rules the middleware share: which paths are the partner API, which header values can be echoed."""
from __future__ import annotations

import re

from multidict import MultiMapping

from schemas.headers import MAX_CORRELATION_ID

PARTNER_PREFIX = "/v3"
TOKEN_PREFIX = "/ims/token/"
# A request that ends without an answer (the client went away, shutdown): nginx's name for it.
CLIENT_CLOSED = 499

# Control characters (C0, DEL and C1), and the surrogates aiohttp decodes bytes that are not UTF-8 to: such a
# value can be neither sent back in a header nor stored.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_partner_path(path: str) -> bool:
    return path == PARTNER_PREFIX or path.startswith(PARTNER_PREFIX + "/")


def is_token_path(path: str) -> bool:
    return path.startswith(TOKEN_PREFIX)


def header_safe(value: str) -> bool:
    return _UNSAFE.search(value) is None


def valid_correlation_id(value: str | None) -> bool:
    """1 to 255 characters, none of them a control character (else `4119`)."""
    return value is not None and 0 < len(value) <= MAX_CORRELATION_ID and header_safe(value)


def sent_twice(headers: MultiMapping[str], name: str) -> bool:
    """Whether a header came more than once. One that names the caller or the request (X-Api-Key,
    Authorization, X-Correlation-Id) is then refused, not read from its first copy: a proxy in front may have
    read another one; a `traceparent` is then ignored."""
    return len(headers.getall(name, ())) > 1
