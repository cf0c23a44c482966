"""Partners and their credentials, as the operator CLI creates them."""
from __future__ import annotations

import secrets

from gateway.credentials import IssuedCredential, digest, fingerprint, new_api_key, new_client_secret
from gateway.order_model import format_time
from gateway.rate_limit import Limit, limit_in_force
from gateway.settings import Settings
from gateway.storage import CredentialRecord, PartnerRecord, Storage


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


def partner_line(partner: PartnerRecord, settings: Settings) -> dict[str, object]:
    """A partner as `partners list` prints it: the rate limit in force, no credential."""
    limit = limit_in_force(partner.override, Limit(settings.rate_limit_per_second, settings.rate_limit_burst))
    per_second = limit.per_second
    return {
        "partnerId": partner.partner_id,
        "name": partner.name,
        "rateLimit": {
            "perSecond": int(per_second) if per_second.is_integer() else per_second,
            "burst": limit.burst,
            "default": partner.override.per_second is None,
        },
        "activeCredentials": partner.active_credentials,
    }


def credential_line(credential: CredentialRecord) -> dict[str, object]:
    """A credential as `credentials list` prints it: its fingerprint, never the key or the secret."""
    return {
        "apiKeyId": credential.fingerprint,
        "created": format_time(credential.created),
        "revoked": format_time(credential.revoked) if credential.revoked is not None else None,
    }
