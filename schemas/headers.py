"""Headers and credentials of the partner API, for the API documents.

Parameters are written in Swagger 2.0 form, aiohttp-apispec's dialect; gateway.openapi translates them for
the OpenAPI 3 document. The credentials (X-Api-Key, and Authorization with a bearer token or, on the token
endpoints, Basic client credentials) are security schemes rather than header parameters: OpenAPI 3 ignores a
header parameter named Authorization, and Swagger UI asks for security schemes once, under "Authorize".
"""

from typing import Any

MAX_CORRELATION_ID = 255  # characters; middleware.correlation enforces it
TOKEN_URL = "/ims/token/v3"  # where the client-credentials scheme fetches its token
# Swagger UI fills a parameter's example into "Try it out": a correlation id that works as it is. Each write
# has its own, which the docs page makes new at each "Execute" (gateway.swagger_ui): one key shared by every
# try made the second a 422 4123 (the same key, another request: a PATCH after a POST, a preview after a NEW).
CORRELATION_ID_EXAMPLE = "try-it-out-1"
WRITE_KEY_EXAMPLES = {"place_order": "try-it-out-place", "update_order": "try-it-out-update"}


def partner_headers(correlation_example: str = CORRELATION_ID_EXAMPLE) -> list[dict[str, Any]]:
    return [
        {"in": "header", "name": "X-Correlation-Id", "required": True, "type": "string",
         "minLength": 1, "maxLength": MAX_CORRELATION_ID, "pattern": r"^[^\x00-\x1f\x7f-\x9f]+$",
         "x-example": correlation_example,
         "description": f"1 to {MAX_CORRELATION_ID} characters, no control characters; echoed on the answer. "
                        "The idempotency key of POST and PATCH: a new value for each new write, the same value to "
                        "retry one (the same key with another body is 422 4123)"},
        {"in": "header", "name": "X-Request-Id", "required": False, "type": "string",
         "description": "Echoed on the response; one is generated when absent or unusable (control characters, "
                        "bytes that are not UTF-8)"},
    ]


PARTNER_HEADERS = partner_headers()

# On the GETs that clients poll: history pages, order details, the change feed.
IF_NONE_MATCH = {
    "in": "header", "name": "If-None-Match", "required": False, "type": "string",
    "description": "ETags of answers already held (or `*`): a current one is answered 304 without a body",
}

# Every /v3 operation needs both the API key and a bearer token issued to that key.
PARTNER_SECURITY: list[dict[str, list[str]]] = [{"apiKey": [], "bearer": []}]
# In the OpenAPI 3 document the token may also be fetched under "Authorize" with the client credentials
# (Swagger 2.0 wants an absolute tokenUrl, and the gateway does not know its public address).
OPENAPI3_PARTNER_SECURITY = [{"apiKey": [], "clientCredentials": []}, *PARTNER_SECURITY]
# The client id and secret come in the form or the query, or else as HTTP Basic credentials (RFC 6749 2.3.1).
TOKEN_SECURITY: list[dict[str, list[str]]] = [{}, {"clientBasic": []}]

_API_KEY = "The API key of the integration (the OAuth client id): every /v3 request sends it as X-Api-Key"
_BEARER = "An access token from POST /ims/token/v3, as `Authorization: Bearer <token>`"
_CLIENT_CREDENTIALS = (
    "Fetches a bearer token from POST /ims/token/v3 with the API key as client_id and the client secret (in "
    "the Authorization header or the request body: both are accepted). Fill in apiKey with the same API key: "
    "/v3 requests need both"
)
_FLOW = {"tokenUrl": TOKEN_URL, "scopes": {}}
_BASIC = "The API key and client secret as HTTP Basic credentials, each form-urlencoded first"

SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": _API_KEY},
    "clientCredentials": {"type": "oauth2", "description": _CLIENT_CREDENTIALS, "flows": {"clientCredentials": _FLOW}},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": _BEARER},
    "clientBasic": {"type": "http", "scheme": "basic", "description": _BASIC},
}
# Swagger 2.0 has no bearer scheme: the token is an API key carried in the Authorization header.
SECURITY_DEFINITIONS = {
    "apiKey": SECURITY_SCHEMES["apiKey"],
    "bearer": {"type": "apiKey", "in": "header", "name": "Authorization", "description": _BEARER},
    "clientBasic": {"type": "basic", "description": _BASIC},
}

# Response headers, Swagger 2.0 header objects.
REQUEST_ID_HEADER = {"type": "string", "description": "The request's X-Request-Id, or a generated UUID"}
LOCATION_HEADER = {"type": "string", "description": "Root-relative URI of the order"}
RETRY_AFTER_HEADER = {"type": "integer", "description": "Seconds to wait before sending the request again"}
CHALLENGE_HEADER = {"type": "string", "description": "The authentication scheme expected"}
# On every /v3 answer after the credential and correlation checks (gateway.rate_limit).
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"type": "integer", "description": "The partner's burst: requests it may send at once"},
    "RateLimit-Remaining": {"type": "integer", "description": "Whole tokens left in the partner's bucket"},
    "RateLimit-Reset": {"type": "integer", "description": "Whole seconds until the partner's bucket is full"},
}
ETAG_HEADER = {"type": "string", "description": "Strong; changes whenever the body would"}
# Every header an answer may carry, by name: gateway.openapi_answers says which answer carries which.
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": REQUEST_ID_HEADER,
    "X-Correlation-Id": {"type": "string", "description": "The request's X-Correlation-Id, echoed when it was valid"},
    **RATE_LIMIT_HEADERS,
    "Retry-After": RETRY_AFTER_HEADER,
    "Idempotent-Replayed": {"type": "string", "enum": ["true"], "description": (
        "On a write's answer replayed for a repeated X-Correlation-Id: the stored answer, byte for byte; nothing "
        "was executed again")},
    "ETag": ETAG_HEADER,
    "Cache-Control": {"type": "string", "description": (
        "`private, no-cache` on what clients poll (ask again with If-None-Match); `no-store` on a token")},
    "Allow": {"type": "string", "description": "The methods the path has, comma-separated"},
    "WWW-Authenticate": CHALLENGE_HEADER,
    "Location": LOCATION_HEADER,
}
NOT_MODIFIED = {
    "description": "Not Modified: If-None-Match lists the current ETag; no body (counts against the rate limit)",
}
