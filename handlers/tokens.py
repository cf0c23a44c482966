"""OAuth 2.0 client-credentials token endpoints (RFC 6749 4.4), v3 in seconds and v2 in milliseconds."""
from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp_apispec import docs, form_schema, querystring_schema, response_schema

from gateway import contract
from gateway.auth_failures import LockedOut
from gateway.credentials import secret_matches
from gateway.errors import OAuthError
from gateway.keys import AUTH_FAILURES, CREDENTIALS, ERROR_CODE, METRICS, SETTINGS, TOKENS
from gateway.storage import Credential
from gateway.openapi_answers import TOKEN_CHECKS, error_answers
from schemas.headers import TOKEN_SECURITY, TOKEN_URL
from schemas.tokens import MAX_FORM_FIELDS, TokenQuerySchema, TokenRequestSchema, TokenSchema

routes = web.RouteTableDef()

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOO_MANY = 429


def _oauth_response(error: OAuthError) -> web.Response:
    return web.json_response(
        {"error": error.error, "error_description": error.description},
        status=error.status,
        headers={**_NO_STORE, **error.headers},
    )


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    sent = request.headers.getall("Authorization", [])
    if not sent:
        return None
    if len(sent) > 1:  # one would authenticate, and a proxy reading the other would see another client
        raise OAuthError(400, "invalid_request", "Authorization sent more than once")
    scheme, _, encoded = sent[0].strip().partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError(400, "invalid_request", "Authorization must use the Basic scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    # Not base64 (binascii.Error), text that is not ASCII (which b64decode refuses with a plain ValueError), or
    # bytes that are not UTF-8 (UnicodeDecodeError): all three are ValueErrors.
    except ValueError:
        raise OAuthError(400, "invalid_request", "malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError(400, "invalid_request", "malformed Basic credentials")
    # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
    return unquote_plus(client_id), unquote_plus(secret)


# RFC 6749 (appendix B) encodes a token form in UTF-8; a client that names a charset names that or one of the
# few in which the form's ASCII syntax reads as ASCII (Java's form entity says ISO-8859-1), each to the codec
# that decodes it. Any other name, Python's own codecs among them (punycode, idna, undefined...), is refused
# before a codec sees the body: those fail in ways of their own, quoting the body in their messages.
_FORM_CHARSETS = {
    "utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii", "iso-8859-1": "latin-1",
    "iso_8859-1": "latin-1", "latin1": "latin-1", "windows-1252": "cp1252", "cp1252": "cp1252",
}


def _unreadable(why: str = "the body is not a readable form") -> OAuthError:
    return OAuthError(400, "invalid_request", why)


async def _form(request: web.Request) -> list[tuple[str, str]]:
    """The form body's fields, each as sent, repeated names included. A urlencoded body is read whole (within
    the body size limit) and split here, so that a form of many fields is the client's malformed request
    (RFC 6749 5.2) rather than aiohttp's 413; a multipart one is left to aiohttp's reader."""
    if request.content_type == "multipart/form-data":
        return await _multipart_form(request)
    if request.content_type not in ("", "application/x-www-form-urlencoded"):
        return []
    try:
        body = await request.read()
    except web.RequestPayloadError:  # an undecodable Content-Encoding
        raise _unreadable() from None
    codec = _FORM_CHARSETS.get((request.charset or "utf-8").strip().lower())
    if codec is None:
        raise _unreadable("a form's charset is UTF-8, US-ASCII, ISO-8859-1 or windows-1252")
    try:
        text = body.rstrip().decode(codec)
    except UnicodeDecodeError:  # the one way these codecs fail: a byte that is not in the charset
        raise _unreadable() from None
    if _more_than_allowed(text):
        raise _unreadable(f"a form has at most {MAX_FORM_FIELDS} fields")
    # A %XX escape that is not text in the charset is read as U+FFFD (errors="replace"), which no client id
    # or secret holds.
    return parse_qsl(text, keep_blank_values=True, encoding=codec)


_FIELD = re.compile("[^&]+")  # a urlencoded field: what lies between two `&`s, when not empty


def _more_than_allowed(text: str) -> bool:
    """Whether a urlencoded form has more than MAX_FORM_FIELDS fields, counted before it is parsed and only
    up to one past the limit, however long the body. Empty ones are not fields (parse_qsl skips them too):
    `a=1&&b=2&` is two."""
    fields = itertools.islice(_FIELD.finditer(text), MAX_FORM_FIELDS + 1)
    return sum(1 for _ in fields) > MAX_FORM_FIELDS


async def _multipart_form(request: web.Request) -> list[tuple[str, str]]:
    try:
        form = await request.post()
    # What aiohttp raises for a body it cannot read as a form: malformed multipart or bytes that are not in
    # the charset (ValueError), an unknown charset (LookupError) or transfer encoding (RuntimeError), a part's
    # header line that is malformed or too long (HttpProcessingError), an undecodable Content-Encoding
    # (RequestPayloadError). Each message may quote the body: none is kept.
    except (ValueError, LookupError, RuntimeError, HttpProcessingError, web.RequestPayloadError):
        raise _unreadable() from None
    except web.HTTPRequestEntityTooLarge as error:
        # aiohttp's own limit of form fields (1000, far above ours) says so in its text; a body over the size
        # limit stays a 413.
        if (error.text or "").startswith("Maximum number of form fields"):
            raise OAuthError(400, "invalid_request", f"a form has at most {MAX_FORM_FIELDS} fields") from None
        raise
    # A file part is a parameter sent too (so that one beside a field of its name is one sent twice), holding
    # no value a token request can use.
    return [(name, value if isinstance(value, str) else "") for name, value in form.items()]


async def _issue(request: web.Request, expires_scale: int) -> web.Response:
    try:
        client_id, credential = await _authenticate(request)
    except OAuthError as error:
        request[ERROR_CODE] = error.error  # for the request log, and the metrics (a 401 invalid_client)
        if error.status == TOO_MANY:
            request.app[METRICS].rate_limited.labels("token").inc()
        return _oauth_response(error)
    settings = request.app[SETTINGS]
    token = request.app[TOKENS].issue(credential.partner_id, client_id)
    body = {"access_token": token, "token_type": "bearer", "expires_in": settings.token_ttl_seconds * expires_scale}
    return web.json_response(body, headers=_NO_STORE)


async def _authenticate(request: web.Request) -> tuple[str, Credential]:
    """The client id and its live credential, or the OAuthError that answers the request."""
    pairs, query = await _form(request), list(request.query.items())
    failures, remote = request.app[AUTH_FAILURES], request.remote
    claimed = _claimed_client_id(pairs, query, request)
    if claimed:  # whatever it asks: by this process's count, then by every process's
        _refuse_locked_out(failures.retry_after(claimed, remote))
        _refuse_locked_out(await failures.shared_retry_after(claimed, remote))
    form = contract.token_request(pairs, query)
    client_id, secret = form.client_id, form.client_secret
    basic = _basic_credentials(request)
    challenge = {"WWW-Authenticate": 'Basic realm="order-gateway"'} if basic else None
    if basic is not None:
        _refuse_other_credentials(basic, (client_id, request.query.get("client_id")),
                                  (secret, request.query.get("client_secret")))
        client_id, secret = basic
    if not client_id:
        raise OAuthError(401, "invalid_client", "client_id and client_secret are required", challenge)
    credential = await request.app[CREDENTIALS].lookup(client_id) if secret else None
    try:
        verified = await failures.attempt(client_id, remote, lambda: _verified(credential, secret))
    except LockedOut as locked:
        raise _locked_out(locked.seconds) from None
    if credential is None or not verified:
        why = "unknown client or wrong secret" if secret else "client_id and client_secret are required"
        raise OAuthError(401, "invalid_client", why, challenge)
    return client_id, credential


def _refuse_other_credentials(basic: tuple[str, str], client_ids: tuple[str | None, ...],
                              secrets: tuple[str | None, ...]) -> None:
    """Basic credentials beside a client id or secret in the form or the query that differ from them: two ways
    of authenticating in one request (RFC 6749 2.3), which would name two clients or two secrets."""
    for name, sent, basic_value in (("client_id", client_ids, basic[0]), ("client_secret", secrets, basic[1])):
        if any(value not in (None, basic_value) for value in sent):
            raise OAuthError(400, "invalid_request", f"{name} differs from the Basic credentials")


def _verified(credential: Credential | None, secret: str | None) -> bool:
    return credential is not None and secret is not None and secret_matches(secret, credential.secret_hash)


def _claimed_client_id(form: list[tuple[str, str]], query: list[tuple[str, str]],
                       request: web.Request) -> str | None:
    """The client id a request names, before anything else of it is checked: the form's, the query's, the
    Basic credentials'."""
    for name, value in (*form, *query):
        if name == "client_id":
            return value
    try:
        basic = _basic_credentials(request)
    except OAuthError:  # malformed: it names no one
        return None
    return basic[0] if basic else None


def _refuse_locked_out(wait: int | None) -> None:
    if wait is not None:
        raise _locked_out(wait)


def _locked_out(wait: int) -> OAuthError:
    return OAuthError(TOO_MANY, "invalid_client", f"too many failed authentications; retry in {wait} s",
                      {"Retry-After": str(wait)})


_TOKEN_DOCS = {
    "tags": ["tokens"],
    "consumes": ["application/x-www-form-urlencoded"],
    "security": TOKEN_SECURITY,
}


_TOKEN_ERRORS = error_answers(
    *TOKEN_CHECKS,  # refused before the OAuth handling: the API's own error shape
    oauth={400: ["invalid_request", "unsupported_grant_type"], 401: ["invalid_client"], 429: ["invalid_client"]},
    notes={
        400: "A parameter sent twice or a form of more than 20 fields is invalid_request; the grant type is "
             "checked next; then Basic credentials that differ from client_id are invalid_request",
        401: "Missing, unknown or revoked client credentials; WWW-Authenticate when they came as Basic",
        429: "Too many failed authentications of this client id from this address (10 within 60 s, counted "
             "by every process on the database): whatever the request, until the 60 s have passed",
    },
)


def _token_operation(path: str, summary: str) -> Callable[[Handler], Handler]:
    """The route and the documents of a token endpoint: v3 and v2 differ only in path and summary (and in the
    unit of expires_in, which their handlers give)."""

    def document(handler: Handler) -> Handler:
        decorators = (
            routes.post(path),
            response_schema(TokenSchema, 200, description="An access token"),
            form_schema(TokenRequestSchema),
            querystring_schema(TokenQuerySchema),
            docs(summary=summary, **_TOKEN_DOCS),
            _TOKEN_ERRORS,
        )
        for decorate in decorators:  # innermost first, as if stacked above the function
            handler = decorate(handler)
        return handler

    return document


@_token_operation(TOKEN_URL, "Issue an access token; expires_in in seconds")
async def token_v3(request: web.Request) -> web.Response:
    return await _issue(request, expires_scale=1)


@_token_operation("/ims/token/v2", "Issue an access token; expires_in in milliseconds (the older protocol)")
async def token_v2(request: web.Request) -> web.Response:
    return await _issue(request, expires_scale=1000)
