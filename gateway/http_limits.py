"""The limits on a request as sent (docs/errors.md), and the API's answer when one is exceeded.

Two places enforce them: the HTTP parser (gateway.http_server), for what it refuses before any middleware
runs, and the error middleware (admit), for what the parser lets through. Both answer through `refusal`, so
the codes come from one table and no answer quotes a byte of the request.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError, LineTooLong

from gateway.errors import ApiError
from gateway.wire import header_safe

# 8 KiB: the request target, one header line, all header fields together.
MAX_TARGET_BYTES = 8192
# aiohttp counts a header's name and value, stripped of the blanks around the value, not the colon nor the
# line end: the 3 bytes every field line adds at least. The fields as sent are counted before parsing
# (head_over_limit); this is the parser's bound, the same or looser. It differs from MAX_TARGET_BYTES, and
# that is how a too long target (414) is told from a too long header line (431): the parser's error carries
# the limit it hit.
_LEAST_LINE_OVERHEAD = 3  # ":" and CRLF
MAX_FIELD_BYTES = MAX_TARGET_BYTES - _LEAST_LINE_OVERHEAD
MAX_HEADERS_BYTES = 8192
MAX_HEADER_FIELDS = 100
# What aiohttp decodes itself; anything else would reach the handlers as undecoded bytes.
ACCEPTED_ENCODINGS = frozenset({"gzip", "deflate", "identity"})

# The keyword arguments of aiohttp's RequestHandler that make the parser enforce the limits above.
PARSER_LIMITS = {
    "max_line_size": MAX_TARGET_BYTES,
    "max_field_size": MAX_FIELD_BYTES,
    "max_headers": MAX_HEADER_FIELDS,
}


class HeadTooLarge(HttpProcessingError):
    """A head's header fields, counted as sent, are over MAX_HEADERS_BYTES (gateway.http_server)."""

    code = 431
    MESSAGE = "The request's header fields are too large"


class HeadTimeout(HttpProcessingError):
    """The request line and header fields did not arrive in full in time (gateway.http_server)."""

    code = 408
    MESSAGE = "The request line and header fields were not received in full in time"


@dataclasses.dataclass
class Capacity:
    """The API requests a process serves at once (GATEWAY_MAX_REQUESTS_IN_FLIGHT), and how many it is
    serving now (middleware.capacity)."""

    limit: int
    serving: int = 0


def refusal(exc: HttpProcessingError) -> ApiError:
    """The API's answer to a request aiohttp's parser refused. The parser's message quotes the request's
    bytes, so it is never used: each answer carries the table's own message."""
    if isinstance(exc, HeadTimeout):
        return ApiError("408", HeadTimeout.MESSAGE)
    if isinstance(exc, HeadTooLarge):
        return ApiError("431")
    if isinstance(exc, LineTooLong):
        return ApiError("414" if exc.args[1:2] == (MAX_TARGET_BYTES,) else "431")
    if isinstance(exc, ContentEncodingError):
        return ApiError("415")
    if exc.message == "Too many headers received":
        return ApiError("431")
    return ApiError("1117", "The request could not be parsed")


def check_request_head(request: web.BaseRequest) -> None:
    """What the parser lets through: a version other than HTTP/1.x (a request line without one is read as
    HTTP/0.9), the size of all header fields together, the encoding."""
    if request.version.major != 1:
        raise ApiError("1117", "Only HTTP/1.0 and HTTP/1.1 requests are served")
    # The least the fields were as sent: for a head not counted as it arrived (pipelined behind a body).
    size = sum(len(name) + len(value) + _LEAST_LINE_OVERHEAD for name, value in request.raw_headers)
    if size > MAX_HEADERS_BYTES:
        raise ApiError("431")
    codings = _codings(request, "Content-Encoding")
    if any(coding not in ACCEPTED_ENCODINGS for coding in codings):
        raise ApiError("415")
    # aiohttp undoes one coding named alone: a body coded twice (`gzip, gzip`), or once in a list
    # (`gzip, identity`), would reach the handlers still coded.
    if len(codings) > 1:
        raise ApiError("415", "One content coding (gzip, deflate or identity) is decoded, named once")
    # Nor does it undo a transfer coding but chunked: `gzip, chunked` was read as if only chunked.
    transfer = _codings(request, "Transfer-Encoding")
    if transfer and transfer != ["chunked"]:
        raise ApiError("1117", "Only the chunked transfer coding is accepted")


def _codings(request: web.BaseRequest, name: str) -> list[str]:
    """The codings a header lists, over all its fields (RFC 9110 5.3: several fields are one list)."""
    return [coding.strip().lower() for header in request.headers.getall(name, ()) for coding in header.split(",")]


class BodyTimeout(TimeoutError):
    """The body did not arrive in full in time. A TimeoutError, so that aiohttp's own reading of an unread
    body after the answer (its "lingering close") takes it as the end of that body."""


def body_deadline(request: web.BaseRequest, timeout: float) -> asyncio.TimerHandle:
    """After `timeout` seconds, a body still arriving fails every read of it, now or later, with
    BodyTimeout: a client that sends a byte now and then cannot hold a connection for ever. The deadline
    makes no read of its own, so the order of the checks stays (credentials are refused before a body is
    read); the caller cancels the handle when the request is answered."""

    def expire() -> None:
        if not request.content.is_eof():
            request.content.set_exception(BodyTimeout())

    return asyncio.get_running_loop().call_later(timeout, expire)


# The parser refuses a whole request over a control character in any header value (RFC 9110 5.5 allows
# none but tab), before any check: `400 1117`, and the client's ids are lost. The API's answer to one in
# X-Correlation-Id is `4119`, after the credential checks, and one in X-Request-Id makes it absent. So in
# those two fields' values such characters are replaced, before parsing, by a byte that is not UTF-8, which
# the checks treat the same way. A field cut by the end of a read is left to the parser.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ID_FIELD = re.compile(rb"(\r\n(?i:x-correlation-id|x-request-id)[ \t]*:)([^\r\n]*)(?=\r\n)")
NOT_UTF8 = b"\xff"


# In a head: a body follows it (a non-zero Content-Length, or any Transfer-Encoding).
_BODY_FOLLOWS = re.compile(rb"\r\n(?:(?i:transfer-encoding)[ \t]*:|(?i:content-length)[ \t]*:[ \t]*0*[1-9])")
MAX_HEAD_KEPT = 32 * 1024  # what a connection keeps of a head still arriving, to see its fields whole


_EMPTY_LINES = re.compile(rb"(?:\r\n)*")


def _heads(data: bytes) -> Iterator[bytes]:
    """The heads in `data`, a head still arriving and what came after it, each with the empty lines before it
    (RFC 9112 2.2): the first one, and each head pipelined behind a request without a body (what follows a
    head whose request has a body is that body). Together they are a prefix of `data`."""
    start = 0
    while start < len(data):
        empty_lines = _EMPTY_LINES.match(data, start)  # (always matches, if only nothing)
        end = data.find(b"\r\n\r\n", empty_lines.end() if empty_lines else start)
        head = data[start:] if end < 0 else data[start : end + 4]
        yield head
        start += len(head)
        if end < 0 or _BODY_FOLLOWS.search(head):
            return


def ids_without_controls(data: bytes) -> bytes:
    """`data` with control characters in the two ids' values made refusable, in its heads only (`_heads`).
    Each byte is replaced by one, so the result has the length of `data`."""
    if _CONTROL.search(data) is None:
        return data
    parts = [_ID_FIELD.sub(lambda field: field[1] + _CONTROL.sub(NOT_UTF8, field[2]), head) for head in _heads(data)]
    return b"".join(parts) + data[sum(map(len, parts)) :]


def head_over_limit(data: bytes) -> int | None:
    """Where in `data` the first head (`_heads`) starts whose header fields are over MAX_HEADERS_BYTES as sent:
    every byte of their lines, the blanks the parser strips around a value included (which let a padded line
    through). No head in fewer bytes than that can be: those are not looked through."""
    if len(data) <= MAX_HEADERS_BYTES:
        return None
    start = 0
    for head in _heads(data):
        request = head.lstrip(b"\r\n")
        line_end = request.find(b"\r\n")
        end = request.find(b"\r\n\r\n", line_end)
        fields = request[line_end + 2 : None if end < 0 else end + 2] if line_end >= 0 else b""
        if end < 0 and fields.endswith(b"\r") and (fields == b"\r" or fields.endswith(b"\r\n\r")):
            fields = fields[:-1]  # the empty line that ends the head, arriving: no field's
        if len(fields) > MAX_HEADERS_BYTES:
            return start
        start += len(head)
    return None


def only_head(data: bytes) -> bytes:
    """`data` when it is one head and nothing after it, else nothing: for several heads, or a head and its
    body and more, the parser refuses all it read for one of them, without saying which."""
    head = next(_heads(data), b"")
    return head if len(head) == len(data) else b""


# A field line as the parser reads one: no blank before the colon, not continued on the next line (obs-fold).
_ID_LINE = re.compile(rb"\r\n((?i:x-request-id|x-correlation-id)):[ \t]*([^\r\n]*?)[ \t]*(?=\r\n(?![ \t]))")


def client_ids(head: bytes) -> tuple[str | None, str | None]:
    """The X-Request-Id and X-Correlation-Id of a refused head, as a parsed request would have them echoed:
    the first X-Request-Id, an X-Correlation-Id sent once, either only when it can be sent back in a header."""
    found: dict[bytes, list[str]] = {}
    for name, value in _ID_LINE.findall(head):
        if len(name) + len(value) <= MAX_FIELD_BYTES:  # a longer one the parser refuses: no request has it
            found.setdefault(name.lower(), []).append(value.decode("utf-8", "surrogateescape"))
    request_ids, correlation_ids = found.get(b"x-request-id", []), found.get(b"x-correlation-id", [])
    request_id = request_ids[0] if request_ids and request_ids[0] and header_safe(request_ids[0]) else None
    correlation_id = correlation_ids[0] if len(correlation_ids) == 1 and header_safe(correlation_ids[0]) else None
    return request_id, correlation_id or None
