"""Partners and their credentials, as the operator CLI creates them."""
from __future__ import annotations

import secrets

from gateway.credentials import IssuedCredential, digest, fingerprint, new_api_key, new_client_secret
from gateway.storage import Storage


async def create_partner(storage: Storage, name: str, partner_id: str | None = None) -> IssuedCredential:
    partner_id = partner_id or f"P{secrets.token_hex(5).upper()}"
    await storage.create_partner(partner_id, name)
    return await create_credential(storage, partner_id)


async def create_credential(storage: Storage, partner_id: str) -> IssuedCredential:
    api_key, secret = new_api_key(), new_client_secret()
    key_hash = digest(api_key)
    await storage.create_credential(partner_id, key_hash, fingerprint(key_hash), digest(secret))
    return IssuedCredential(partner_id, api_key, secret)


async def revoke_credential(storage: Storage, api_key: str) -> bool:
    return await storage.revoke_credential(digest(api_key))
