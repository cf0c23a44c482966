"""The bearer token's lifecycle: fetched on first use, renewed a few minutes before it expires, and dropped
when the gateway refuses it (`401 4116`: a rotated signing key, a clock that drifted) so that the next
attempt fetches a new one."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from partner_orders_client.errors import UnexpectedAnswer
from partner_orders_client.wire import Answer, Request, json_object

TOKEN_PATH = "/ims/token/v3"  # v3 answers expires_in in seconds (v2 in milliseconds)
# Renewed this long before expiry, so that a token never expires between being chosen and being checked
# (the gateway allows 60 s of clock skew; a slow retry loop can take longer than that).
RENEW_MARGIN_SECONDS = 300.0


@dataclass
class _Held:
    access_token: str
    renew_at: float  # on the client's monotonic clock


class TokenKeeper:
    """Holds one partner credential's current token. Not a lock: two callers that find it stale at once both
    fetch one, and both tokens are valid, which costs a request and nothing else."""

    def __init__(self, api_key: str, client_secret: str) -> None:
        self.api_key = api_key
        self._client_secret = client_secret
        self._held: _Held | None = None

    def current(self, now: float) -> str | None:
        """The token to send, or None when one must be fetched first."""
        if self._held is None or now >= self._held.renew_at:
            return None
        return self._held.access_token

    def request(self) -> Request:
        form = {"grant_type": "client_credentials", "client_id": self.api_key, "client_secret": self._client_secret}
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        return Request("POST", TOKEN_PATH, urlencode(form).encode(), headers)

    def accept(self, answer: Answer, now: float) -> str:
        """Keeps the token of a successful answer; renews at the margin before expiry, or halfway through a
        lifetime shorter than twice the margin."""
        body = json_object(answer)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool):
            raise UnexpectedAnswer(f"token answer without access_token and expires_in: {sorted(body)}")
        margin = min(RENEW_MARGIN_SECONDS, lifetime / 2)
        self._held = _Held(token, now + lifetime - margin)
        return token

    def forget(self, token: str) -> None:
        """Drops a token the gateway refused, unless another call has replaced it already."""
        if self._held is not None and self._held.access_token == token:
            self._held = None
