"""Access tokens: HS256 JWTs bound to the API key they were issued to.

The algorithm is pinned on verification, so `alg: none` and algorithm switching are refused by PyJWT.
"""
from __future__ import annotations

import dataclasses
import hmac
import secrets
import time

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "client_id"]
SIGNING_KEY_BYTES = 48
# Verified tokens remembered (token -> partner, API key, expiry): checking an HS256 signature costs more
# than the rest of a history request's authentication. A token only becomes invalid by expiring.
MAX_REMEMBERED_TOKENS = 10_000


class TokenError(Exception):
    """The token is not one this gateway issued for this API key, or no longer valid."""


@dataclasses.dataclass(frozen=True)
class TokenService:
    signing_key: str
    issuer: str
    ttl_seconds: int
    leeway_seconds: int
    _verified: dict[str, tuple[str, str, int]] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def issue(self, partner_id: str, api_key: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": partner_id,
            "client_id": api_key,
            "iat": issued,
            "exp": issued + self.ttl_seconds,
        }
        return jwt.encode(claims, self.signing_key, algorithm=ALGORITHM)

    def verify(self, token: str, api_key: str) -> str:
        """The partner id the token was issued to, or TokenError."""
        known = self._verified.get(token)
        if known is not None and time.time() <= known[2] + self.leeway_seconds:
            partner_id, client_id, _ = known
        else:
            partner_id, client_id, expires = self._decode(token)
            if len(self._verified) >= MAX_REMEMBERED_TOKENS:
                self._verified.clear()
            self._verified[token] = (partner_id, client_id, expires)
        if not hmac.compare_digest(_raw(client_id), _raw(api_key)):
            raise TokenError("token was issued to another API key")
        return partner_id

    def _decode(self, token: str) -> tuple[str, str, int]:
        # A JWT is ASCII; header bytes that are not UTF-8 arrive as surrogates, which PyJWT cannot encode.
        if not token.isascii():
            raise TokenError("token is not ASCII")
        try:
            claims = jwt.decode(
                token,
                self.signing_key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        partner_id, client_id, expires = claims.get("sub"), claims.get("client_id"), claims.get("exp")
        if not isinstance(partner_id, str) or not isinstance(client_id, str) or not isinstance(expires, int):
            raise TokenError("token lacks its partner, client or expiry")
        return partner_id, client_id, expires


def new_signing_key() -> str:
    return secrets.token_urlsafe(SIGNING_KEY_BYTES)


def _raw(value: str) -> bytes:
    # Header values may carry undecodable bytes as surrogates; compare them as they came.
    return value.encode("utf-8", "surrogatepass")
