"""API keys and client secrets: generated at random, stored only as hashes, compared in constant time.

Both are 256-bit random strings, so a plain SHA-256 is already beyond brute force; a slow password hash
would only add latency to every token request.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets

KEY_BYTES = 32
FINGERPRINT_CHARS = 8  # what logs show for a key: enough to tell keys apart, useless to an attacker


@dataclasses.dataclass(frozen=True)
class IssuedCredential:
    partner_id: str
    api_key: str
    client_secret: str

    def as_json(self) -> dict[str, str]:
        return {"partnerId": self.partner_id, "apiKey": self.api_key, "clientSecret": self.client_secret}


def new_api_key() -> str:
    return secrets.token_hex(KEY_BYTES // 2)


def new_client_secret() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(key_hash: str) -> str:
    return key_hash[:FINGERPRINT_CHARS]


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(digest(secret), secret_hash)
