"""Partners, their credentials and the gateway's own keys: each statement beside the function running it."""
from __future__ import annotations

import time

from gateway.storage.db import Db
from gateway.storage.types import Credential, CredentialRecord, PartnerRecord, RateOverride, StorageError

# Reads a real table: a database that lost its schema is not ready either.
PING = "SELECT count(*) FROM meta"


async def ping(db: Db) -> None:
    await db.fetch(PING)


# Inside a write transaction, changes nothing: the database took the write lock (SQLite) or a read-write
# transaction (PostgreSQL: not a standby, not failing over) within the busy timeout.
WRITE_PROBE = "UPDATE meta SET value = value WHERE key = ?"


async def probe_write(db: Db) -> None:
    await db.execute(WRITE_PROBE, (SIGNING_KEY,))


GET_META = "SELECT value FROM meta WHERE key = ?"
INSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
SIGNING_KEY = "jwt_signing_key"


SEALING_KEY = "webhook_secret_key"
CURSOR_KEY = "feed_cursor_key"


async def kept_value(db: Db, name: str, candidate: str) -> str:
    """The value stored under `name`; `candidate` is stored first when there is none yet (so every process
    of every host ends up with the first one stored)."""
    await db.execute(INSERT_META, (name, candidate))
    return str((await db.fetch(GET_META, (name,)))[0][0])


async def signing_key(db: Db, candidate: str) -> str:
    return await kept_value(db, SIGNING_KEY, candidate)


async def sealing_key(db: Db, candidate: str) -> str:
    """The key that seals webhook secrets at rest, when none is configured."""
    return await kept_value(db, SEALING_KEY, candidate)


async def cursor_key(db: Db, candidate: str) -> str:
    """The key that signs the feed's cursors: the database's own, which no setting changes."""
    return await kept_value(db, CURSOR_KEY, candidate)


PARTNER_EXISTS = "SELECT 1 FROM partners WHERE partner_id = ?"


async def partner_exists(db: Db, partner_id: str) -> bool:
    return bool(await db.fetch(PARTNER_EXISTS, (partner_id,)))


INSERT_PARTNER = "INSERT INTO partners (partner_id, name, created) VALUES (?, ?, ?)"


async def create_partner(db: Db, partner_id: str, name: str) -> None:
    if await partner_exists(db, partner_id):
        raise StorageError(f"partner {partner_id!r} already exists")
    await db.execute(INSERT_PARTNER, (partner_id, name, int(time.time())))


INSERT_CREDENTIAL = (
    "INSERT INTO credentials (key_hash, partner_id, fingerprint, secret_hash, created) VALUES (?, ?, ?, ?, ?)"
)


async def create_credential(db: Db, partner_id: str, key_hash: str, fingerprint: str, secret_hash: str) -> None:
    if not await partner_exists(db, partner_id):
        raise StorageError(f"no partner {partner_id!r}")
    await db.execute(INSERT_CREDENTIAL, (key_hash, partner_id, fingerprint, secret_hash, int(time.time())))


GET_CREDENTIAL = "SELECT partner_id, fingerprint, secret_hash, revoked FROM credentials WHERE key_hash = ?"


async def get_credential(db: Db, key_hash: str) -> Credential | None:
    rows = await db.fetch_by_key(GET_CREDENTIAL, (key_hash,))
    if not rows:
        return None
    partner_id, fingerprint, secret_hash, revoked = rows[0]
    return Credential(partner_id, fingerprint, secret_hash, revoked is not None)


REVOKE_CREDENTIAL = "UPDATE credentials SET revoked = COALESCE(revoked, ?) WHERE key_hash = ?"


async def revoke_credential(db: Db, key_hash: str) -> bool:
    """True when a credential with that key existed (revoking twice is harmless)."""
    return await db.execute(REVOKE_CREDENTIAL, (int(time.time()), key_hash)) > 0


REVOKE_PARTNER_CREDENTIALS = "UPDATE credentials SET revoked = ? WHERE partner_id = ? AND revoked IS NULL"


async def revoke_partner_credentials(db: Db, partner_id: str) -> int:
    """Revokes every credential of the partner; how many were active."""
    return await db.execute(REVOKE_PARTNER_CREDENTIALS, (int(time.time()), partner_id))


GET_RATE_OVERRIDE = "SELECT rate_per_second, rate_burst FROM partners WHERE partner_id = ?"


async def rate_override(db: Db, partner_id: str) -> RateOverride:
    rows = await db.fetch(GET_RATE_OVERRIDE, (partner_id,))
    return RateOverride(*rows[0]) if rows else RateOverride(None, None)


SET_RATE_OVERRIDE = "UPDATE partners SET rate_per_second = ?, rate_burst = ? WHERE partner_id = ?"


async def set_rate_override(db: Db, partner_id: str, override: RateOverride) -> None:
    if not await db.execute(SET_RATE_OVERRIDE, (override.per_second, override.burst, partner_id)):
        raise StorageError(f"no partner {partner_id!r}")


LIST_PARTNERS = (
    "SELECT p.partner_id, p.name, p.rate_per_second, p.rate_burst, "
    "(SELECT count(*) FROM credentials c WHERE c.partner_id = p.partner_id AND c.revoked IS NULL) "
    "FROM partners p ORDER BY p.partner_id"
)


async def list_partners(db: Db) -> list[PartnerRecord]:
    return [
        PartnerRecord(partner_id, name, RateOverride(per_second, burst), active)
        for partner_id, name, per_second, burst, active in await db.fetch(LIST_PARTNERS)
    ]


LIST_CREDENTIALS = "SELECT fingerprint, created, revoked FROM credentials WHERE partner_id = ? ORDER BY created, fingerprint"


async def list_credentials(db: Db, partner_id: str) -> list[CredentialRecord]:
    if not await partner_exists(db, partner_id):
        raise StorageError(f"no partner {partner_id!r}")
    return [CredentialRecord(*row) for row in await db.fetch(LIST_CREDENTIALS, (partner_id,))]
