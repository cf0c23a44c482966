"""The change feed's events: written in the transaction of each change, read by partner after a number.

Exactly once, whatever commits when: an event's number (`seq`) is taken in the order the changes commit,
so a reader that has seen number N has already seen, or will never see, every number below it.
- SQLite commits its writers one at a time, in the order they run: the table's own numbers are in order.
- On PostgreSQL several transactions write at once, and a number taken first may commit last. So a write
  inserts its events under placeholder numbers, and its COMMIT numbers them under one transaction-scoped
  lock that the commit itself releases (gateway.storage.commit_order): the next transaction can number only
  after this one is visible.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from gateway.order_events import OrderEvent
from gateway.storage.db import Db

# The event goes to the partner that sees the order (through the order's reseller and the customer's); that
# of an order no partner sees goes to none ('') until one does. When what a partner sees changes
# (gateway.storage.changes, on a reseller or customer moved by an import), the events follow their orders
# (`restamp`). Each event is due at
# once to every enabled webhook of its partner that takes its type (`types` is '' or ',type,type,').
WEBHOOKS_OF_EVENT = """
    JOIN webhooks w ON w.partner_id = event.partner_id
    WHERE w.disabled IS NULL AND (w.types = '' OR w.types LIKE '%,' || event.type || ',%')
"""
DELIVERIES_OF = f"""
    INSERT INTO webhook_deliveries (webhook_id, event_id, created, attempts, due)
    SELECT w.webhook_id, event.event_id, event.created, 0, event.created * 1000 FROM {{events}} {WEBHOOKS_OF_EVENT}
"""

SEEN_BY = """COALESCE((
    SELECT r.partner_id FROM resellers r JOIN customers c ON c.customer_id = ?2
    JOIN resellers cr ON cr.reseller_id = c.reseller_id WHERE r.reseller_id = ?7 AND cr.partner_id = r.partner_id
), '')"""
INSERT_EVENT = f"""
    INSERT INTO order_events (event_id, partner_id, customer_id, order_id, type, created, body, traceparent)
    VALUES (?1, {SEEN_BY}, ?2, ?3, ?4, ?5, ?6, ?8)
"""
DELIVERIES_OF_EVENT = DELIVERIES_OF.format(events="order_events event") + " AND event.event_id = ?"
# On PostgreSQL an event and its deliveries are one statement, under a placeholder number (the negative of a
# fresh one) that its COMMIT replaces (gateway.storage.commit_order).
INSERT_EVENT_STAGED = f"""
    WITH event AS (
        INSERT INTO order_events (seq, event_id, partner_id, customer_id, order_id, type, created, body, traceparent)
        VALUES (-nextval('order_events_seq'), ?1::text, {SEEN_BY},
                ?2::text, ?3::text, ?4::text, ?5::bigint, ?6::bytea, ?8::text)
        RETURNING *
    ) {DELIVERIES_OF.format(events="event")}
"""


async def write_events(db: Db, events: Sequence[OrderEvent], bulk: bool = False,
                       traceparent: str | None = None) -> None:
    """The events, and the deliveries they are due to webhooks; `traceparent`: the W3C trace context of the
    request that caused them."""
    rows = [
        (e.event_id, e.order.customer_id, e.order.order_id, e.type, e.created, e.body, e.order.reseller_id,
         traceparent)
        for e in events
    ]
    if not rows:
        return
    if db.commits_in_order:
        await db.execute_last(INSERT_EVENT, rows)
        await db.executemany(DELIVERIES_OF_EVENT, [(e.event_id,) for e in events])
    elif bulk:  # as it goes: a bulk write's events are never all held in memory
        await db.executemany(INSERT_EVENT_STAGED, rows)
    else:
        await db.execute_last(INSERT_EVENT_STAGED, rows)


# The partner's events after a number, oldest first: one range of order_events_partner.
FEED = "SELECT seq, body FROM order_events WHERE partner_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"

# Filtered, the page is merged from one range per value, each already in number order and cut at the page's
# size (UNION ALL, then ORDER BY seq LIMIT), and only then are the page's bodies read: a page costs its size
# times the values, however many of the partner's events do not match. A customer's range is
# order_events_customer_partner; given types too, each event of it has its type looked up by number (in a
# subquery: the type is then no index condition, and no planner trades the customer's range for the
# partner's range of a type, as SQLite without statistics would). Types alone: order_events_partner_type.
CUSTOMER_RANGE = """
    SELECT seq FROM (SELECT seq FROM order_events c WHERE customer_id = ?{value} AND partner_id = ?1 AND seq > ?2
                     {types} ORDER BY seq LIMIT ?3) AS v{value}
"""
OF_TYPES = "AND (SELECT t.type FROM order_events t WHERE t.seq = c.seq) IN ({values})"
TYPE_RANGE = """
    SELECT seq FROM (SELECT seq FROM order_events WHERE partner_id = ?1 AND type = ?{value} AND seq > ?2
                     ORDER BY seq LIMIT ?3) AS v{value}
"""
# SQLite takes at most 500 terms in one compound SELECT: more ranges are a union of unions of UNION_MAX.
UNION_MAX = 100
UNION_OF = "SELECT seq FROM ({ranges} ORDER BY seq LIMIT ?3) AS u{group}"
FILTERED_FEED = """
    SELECT e.seq, e.body FROM ({ranges} ORDER BY seq LIMIT ?3) AS page JOIN order_events e ON e.seq = page.seq
    ORDER BY e.seq
"""


async def feed(db: Db, partner_id: str, after: int, limit: int, customer_ids: Iterable[str],
               types: Iterable[str]) -> list[tuple[int, bytes]]:
    """The partner's events after `after`, oldest first: of the customers (any when none), of the types (any
    when none)."""
    customers, kinds = sorted(set(customer_ids)), sorted(set(types))
    sql = _filtered(len(customers), len(kinds)) if customers or kinds else FEED
    rows = await db.fetch(sql, [partner_id, after, limit, *customers, *kinds])
    return [(int(seq), bytes(body)) for seq, body in rows]


def _filtered(customers: int, types: int) -> str:
    """FILTERED_FEED for that many customers (parameters from ?4 on) and types (after the customers')."""
    first_type = 4 + customers
    if customers:
        marks = ",".join(f"?{first_type + n}" for n in range(types))
        inside = OF_TYPES.format(values=marks) if types else ""
        ranges = [CUSTOMER_RANGE.format(value=4 + n, types=inside) for n in range(customers)]
    else:
        ranges = [TYPE_RANGE.format(value=first_type + n) for n in range(types)]
    while len(ranges) > UNION_MAX:
        ranges = [UNION_OF.format(ranges=" UNION ALL ".join(ranges[start:start + UNION_MAX]), group=start)
                  for start in range(0, len(ranges), UNION_MAX)]
    return FILTERED_FEED.format(ranges=" UNION ALL ".join(ranges))


# '' for an order no partner sees now.
RESTAMP = """
    UPDATE order_events SET partner_id = COALESCE((
        SELECT r.partner_id FROM orders o
        JOIN resellers r ON r.reseller_id = o.reseller_id
        JOIN customers c ON c.customer_id = o.customer_id
        JOIN resellers cr ON cr.reseller_id = c.reseller_id
        WHERE o.order_id = order_events.order_id AND cr.partner_id = r.partner_id), '')
    WHERE customer_id = ?1 OR order_id IN (SELECT order_id FROM orders WHERE customer_id = ?1)
"""


async def restamp(db: Db, customer_ids: Collection[str]) -> None:
    """The customers' events given to whichever partner sees their orders now (nobody: '')."""
    if not customer_ids:
        return
    await db.executemany(RESTAMP, [(customer_id,) for customer_id in sorted(set(customer_ids))])


PURGED_THROUGH = "events_purged_through"  # the meta key: events up to this number are gone
GET_PURGED = "SELECT value FROM meta WHERE key = ?"


async def purged_through(db: Db) -> int:
    rows = await db.fetch(GET_PURGED, (PURGED_THROUGH,))
    return int(rows[0][0]) if rows else 0


GET_PARTNER_PURGED = "SELECT through FROM event_purges WHERE partner_id = ?"


async def partner_purged_through(db: Db, partner_id: str) -> int:
    """The highest number among the partner's purged events (0: none purged)."""
    rows = await db.fetch(GET_PARTNER_PURGED, (partner_id,))
    return int(rows[0][0]) if rows else 0


# An event a webhook delivery still waits for is kept, and so is every later one: the purged events stay
# one run from the first, which the feed's 410 relies on.
LAST_EXPIRED = """
    SELECT max(seq) FROM order_events WHERE created < ? AND seq < COALESCE(
        (SELECT min(pending.seq) FROM webhook_deliveries d JOIN order_events pending ON pending.event_id = d.event_id),
        9223372036854775807)
"""
MARK_PARTNERS = """
    INSERT INTO event_purges (partner_id, through)
    SELECT partner_id, max(seq) FROM order_events WHERE seq <= ? GROUP BY partner_id
    ON CONFLICT (partner_id) DO UPDATE SET through = excluded.through WHERE excluded.through > event_purges.through
"""
DELETE_EVENTS = "DELETE FROM order_events WHERE seq <= ?"
SET_PURGED = """
    INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""


async def purge_events(db: Db, before: int) -> int:
    """Drops the events created before `before` (and any numbered below them); how many."""
    await db.lock(PURGED_THROUGH)  # purges run one at a time: the mark only moves forward
    rows = await db.fetch(LAST_EXPIRED, (before,))  # an expired event with pending deliveries is kept
    last = rows[0][0] if rows else None
    if last is None:
        return 0
    await db.execute(MARK_PARTNERS, (last,))
    purged = await db.execute(DELETE_EVENTS, (last,))
    await db.execute(SET_PURGED, (PURGED_THROUGH, str(max(int(last), await purged_through(db)))))
    return purged
