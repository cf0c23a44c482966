"""The change feed: a partner's order events after a cursor, oldest first.

A cursor is the number of the last event a page holds (gateway.storage.events numbers them in commit order),
signed for the partner it was given to: another partner's cursor, or a made-up one, is refused (400 1132).
The signing key is the database's own, kept from its first start: cursors outlive a change of the token
signing key (earlier releases signed with a key derived from it, and their cursors are still taken).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import urlencode

import orjson
from multidict import MultiMapping

from gateway import contract
from gateway.errors import ApiError
from gateway.order_model import link
from gateway.storage import Storage
from schemas.events import FeedQuery

FEED_PATH = "/v3/order-events"
_SEQ_BYTES = 8
_MAC_BYTES = 12


class EventFeed:
    def __init__(self, storage: Storage, cursor_key: str, former_key: str) -> None:
        self._storage = storage
        # The first signs; both verify. `former_key`: the token signing key, which earlier releases signed with.
        self._keys = (_derived(cursor_key), _derived(former_key))

    def query(self, params: MultiMapping[str], raw_query: str) -> FeedQuery:
        return contract.feed_query(params, raw_query)

    async def page(self, partner_id: str, query: FeedQuery) -> bytes:
        """The page as JSON bytes; ApiError 1132 for a cursor that is not this partner's, 410 4124 for one
        that points before the oldest event kept."""
        if query.cursor is None:
            after = await self._storage.events_purged_through()
        else:
            after = self._position(partner_id, query.cursor)
        events = await self._storage.events_after(partner_id, after, query.limit, query.customer_ids, query.types)
        # Read after the events: a purge that committed meanwhile may have taken some the cursor had not seen.
        # Only the partner's own purged events count: another partner's going makes no cursor stale.
        if query.cursor is not None and after < await self._storage.partner_events_purged_through(partner_id):
            raise ApiError("4124", fields=["cursor"])
        # An empty page gives back the cursor it was given, so a client can poll with it.
        cursor = self.cursor(partner_id, events[-1][0] if events else after)
        if not events and query.cursor is not None:
            cursor = query.cursor
        return _render(query, cursor, [body for _, body in events])

    def cursor(self, partner_id: str, position: int, key: bytes | None = None) -> str:
        seq = position.to_bytes(_SEQ_BYTES, "big")
        mac = _mac(key or self._keys[0], partner_id, seq)
        return base64.urlsafe_b64encode(seq + mac).rstrip(b"=").decode()

    def _position(self, partner_id: str, cursor: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        seq, mac = raw[:_SEQ_BYTES], raw[_SEQ_BYTES:]
        position = int.from_bytes(seq, "big")
        # Exactly as issued: the decoder skips characters outside its alphabet, so another spelling of a
        # cursor could otherwise pass (and be handed back by an empty page).
        if len(raw) != _SEQ_BYTES + _MAC_BYTES or not any(
            hmac.compare_digest(mac, _mac(key, partner_id, seq)) and cursor == self.cursor(partner_id, position, key)
            for key in self._keys
        ):
            raise ApiError("1132", "Invalid query parameters", details=["cursor: not a cursor of this feed"],
                           fields=["cursor"])
        return position


def _derived(key: str) -> bytes:
    """The feed's own key from a stored or configured one: cursors and tokens never sign for each other."""
    return hmac.new(key.encode(), b"order-events cursor", hashlib.sha256).digest()


def _mac(key: bytes, partner_id: str, seq: bytes) -> bytes:
    return hmac.new(key, partner_id.encode() + b"\x1f" + seq, hashlib.sha256).digest()[:_MAC_BYTES]


def _render(query: FeedQuery, cursor: str, events: list[bytes]) -> bytes:
    def page(at: str | None) -> dict[str, object]:
        params = [*query.echo, *([("cursor", at)] if at is not None else []), ("limit", str(query.limit))]
        return link(f"{FEED_PATH}?{urlencode(params)}")

    links = {"self": page(query.cursor), "next": page(cursor)}
    head = b'{"count":%d,"limit":%d,"cursor":%b,"items":[' % (len(events), query.limit, orjson.dumps(cursor))
    # Stored events are already encoded: the page is spliced, not re-encoded.
    return head + b",".join(events) + b'],"links":' + orjson.dumps(links) + b"}"
