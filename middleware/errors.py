"""Every failure leaves as the API's one error shape; a crash leaves as 1124 with nothing of its internals."""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ERROR_CODES, INTERNAL_ERROR, ApiError
from gateway.keys import ERROR, ERROR_CODE
from gateway.storage import StorageUnavailable

DATABASE_RETRY_AFTER_SECONDS = 1
# aiohttp's own refusals that have a code of their own in the API.
_HTTP_CODES = {404: "404", 405: "405", 413: "413"}


def error_response(error: ApiError) -> web.Response:
    response = web.Response(
        body=orjson.dumps(error.body()), status=error.status, content_type="application/json"
    )
    response.headers.update(error.headers)
    return response


def _from_http(exc: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status)
    if code is None:
        # Any other refusal by aiohttp itself is about the request as sent (or, 5xx, about us).
        return ApiError("1117", exc.reason) if exc.status < 500 else ApiError(INTERNAL_ERROR)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(code, ERROR_CODES[code][1], headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        request[ERROR_CODE] = error.code
        return error_response(error)
    except web.RequestPayloadError:
        # A body that cannot be read as sent: an unknown Content-Encoding, broken compression or chunking.
        unreadable = ApiError("1117", "The request body could not be read")
        request[ERROR_CODE] = unreadable.code
        return error_response(unreadable)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        refusal = _from_http(exc)
        request[ERROR_CODE] = refusal.code
        return error_response(refusal)
    except StorageUnavailable:
        # Waited for and retried within the busy timeout already: the client is told when to come back.
        busy = ApiError("503", headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
        request[ERROR_CODE] = busy.code
        return error_response(busy)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        request[ERROR] = exc
        request[ERROR_CODE] = INTERNAL_ERROR
        return error_response(ApiError(INTERNAL_ERROR))
