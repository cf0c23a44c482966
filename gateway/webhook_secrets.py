"""Webhook secrets: made once, shown once, kept sealed.

A delivery is signed with the secret itself (HMAC needs the key, not a hash of it), so the database must
hold something the gateway can open again. It holds the secret encrypted with AES-GCM, bound to its
webhook's id (a sealed secret copied onto another webhook does not open), under a key that should live
outside the database (`GATEWAY_WEBHOOK_SECRET_KEY`): then a copy of the database alone, a backup or a
dump, gives away no secret. Without that setting the key is generated once and kept in the database, which
still keeps secrets out of anything that reads the webhooks table alone.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the Standard Webhooks specification asks for 24 to 64
NONCE_BYTES = 12


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_sealing_key() -> str:
    return secrets.token_urlsafe(32)


class SecretUnreadable(Exception):
    """A sealed secret that this key cannot open: the key changed since the webhook was added."""


class SecretBox:
    def __init__(self, key: str) -> None:
        # The configured text may be any length from 32 characters: its SHA-256 is the AES-256 key.
        self._aead = AESGCM(hashlib.sha256(b"order-gateway webhook secrets\0" + key.encode()).digest())

    def seal(self, webhook_id: str, secret: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), webhook_id.encode())

    def open(self, webhook_id: str, sealed: bytes) -> str:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], webhook_id.encode()).decode()
        except InvalidTag:
            raise SecretUnreadable(f"webhook {webhook_id}: its secret was sealed under another key") from None
