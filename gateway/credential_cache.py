"""Credential look-ups with a short in-process memory, so authentication costs no query per request.

A revoked credential stops working on every running server within `credential_cache_seconds`.
"""
from __future__ import annotations

import time

from gateway.credentials import digest
from gateway.storage import Credential, Storage

MAX_REMEMBERED = 10_000


class CredentialCache:
    def __init__(self, storage: Storage, ttl_seconds: float) -> None:
        self._storage = storage
        self._ttl = ttl_seconds
        self._known: dict[str, tuple[float, Credential | None]] = {}

    async def lookup(self, api_key: str) -> Credential | None:
        """The live (not revoked) credential of this API key, or None."""
        key_hash = digest(api_key)
        now = time.monotonic()
        hit = self._known.get(key_hash)
        if hit is not None and now - hit[0] < self._ttl:
            credential = hit[1]
        else:
            credential = await self._storage.get_credential(key_hash)
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            # Unknown keys are remembered too, so a flood of made-up keys does not become a flood of queries.
            self._known[key_hash] = (now, credential)
        if credential is None or credential.revoked:
            return None
        return credential
