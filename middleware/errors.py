"""Every failure leaves as the API's one error shape; a crash leaves as 1124 with nothing of its internals."""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import DATABASE_RETRY_AFTER_SECONDS, ERROR_CODES, INTERNAL_ERROR, ApiError
from gateway.http_limits import BodyTimeout, body_deadline, check_request_head
from gateway.keys import ERROR, ERROR_CODE, SETTINGS
from gateway.storage import StorageUnavailable
from gateway.storage.wait_budget import one_request
from gateway.wire import CLIENT_CLOSED

# aiohttp's own refusals that have a code of their own in the API.
_HTTP_CODES = {404: "404", 405: "405", 413: "413"}


# Answers after which the connection is closed: a 408's body may still be arriving, byte by byte.
_CLOSING = frozenset({408})


def error_response(error: ApiError) -> web.Response:
    response = web.Response(
        body=orjson.dumps(error.body()), status=error.status, content_type="application/json"
    )
    response.headers.update(error.headers)
    if error.status in _CLOSING or error.headers.get("Connection") == "close":
        response.force_close()
    return response


def _client_gone(request: web.Request) -> web.Response:
    """The client went away before its request was read in full: no one is left to answer, and it is not a
    server error. The request log writes its 499 line at level info."""
    request[ERROR_CODE] = "client_closed"
    return web.Response(status=CLIENT_CLOSED)


def _refuse(request: web.Request, error: ApiError) -> web.Response:
    """The error's answer, its code noted for the request log and the metrics."""
    request[ERROR_CODE] = error.code
    return error_response(error)


def _connection_lost(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _from_http(exc: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status)
    if code is None:
        # Any other refusal by aiohttp itself is about the request as sent (or, 5xx, about us).
        return ApiError("1117", exc.reason) if exc.status < 500 else ApiError(INTERNAL_ERROR)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(code, ERROR_CODES[code][1], headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    with one_request():  # the steps of the request that give up on the database share one busy timeout
        return await _answer(request, handler)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    # A body already received in full (every GET's, most POSTs') needs no deadline: no timer per request.
    deadline = None if request.content.is_eof() else body_deadline(request, request.app[SETTINGS].body_timeout_seconds)
    try:
        check_request_head(request)
        return await handler(request)
    except BodyTimeout:
        return _refuse(request, ApiError("408"))
    except ApiError as error:
        return _refuse(request, error)
    except ConnectionError:
        return _client_gone(request)
    except web.RequestPayloadError:
        if _connection_lost(request):
            return _client_gone(request)
        # A body that cannot be read as sent: an unknown Content-Encoding, broken compression or chunking.
        return _refuse(request, ApiError("1117", "The request body could not be read"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _refuse(request, _from_http(exc))
    except StorageUnavailable:
        # Waited for and retried within the busy timeout already: the client is told when to come back.
        return _refuse(request, ApiError("503", headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        request[ERROR] = exc
        request[ERROR_CODE] = INTERNAL_ERROR
        return error_response(ApiError(INTERNAL_ERROR))
    finally:
        # A body still arriving after the answer keeps its deadline: aiohttp reads what is left of it before
        # the next request (its "lingering close", 10 s), and the deadline ends that read, and the connection.
        if deadline is not None and request.content.is_eof():
            deadline.cancel()
