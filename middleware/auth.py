"""Partner authentication for /v3: the API key first (403 4115), then its bearer token (401 4117/4116)."""
from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.keys import API_KEY_ID, CREDENTIALS, PARTNER_ID, TOKENS
from gateway.tokens import TokenError
from gateway.wire import is_partner_path, sent_twice

BEARER = "bearer"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_partner_path(request.path):
        return await handler(request)
    if sent_twice(request.headers, "X-Api-Key"):
        raise ApiError("4115", "X-Api-Key sent more than once")
    api_key = request.headers.get("X-Api-Key")
    credential = await request.app[CREDENTIALS].lookup(api_key) if api_key else None
    if credential is None or api_key is None:
        raise ApiError("4115")
    request[API_KEY_ID] = credential.fingerprint
    request[PARTNER_ID] = credential.partner_id
    authorization = request.headers.get("Authorization")
    if authorization is None:
        raise ApiError("4117", headers=_CHALLENGE)
    if sent_twice(request.headers, "Authorization"):
        raise ApiError("4116", "Authorization sent more than once", headers=_CHALLENGE)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER or not token:
        raise ApiError("4116", "Authorization must be a bearer token", headers=_CHALLENGE)
    try:
        partner_id = request.app[TOKENS].verify(token, api_key)
    except TokenError:
        raise ApiError("4116", headers=_CHALLENGE) from None
    if partner_id != credential.partner_id:
        raise ApiError("4116", headers=_CHALLENGE)
    return await handler(request)
