"""Orders and their lines: reading one for a write, inserting, storing changes, the RETURN bookkeeping.

Every write here reports the orders it changed to `changes.record_changes`, in the same transaction.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.order_model import (
    INACTIVE_STATUSES,
    STATUS_CANCELLED,
    STATUS_COMPLETE,
    LineItem,
    Order,
    Promotion,
    new_subscription_id,
)
from gateway.order_events import OrderChange
from gateway.storage.changes import record_changes
from gateway.storage.db import Db
from gateway.storage.types import StorageError

INSERT_ORDER = """
    INSERT INTO orders (order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
                        reference_order_id, currency_code, source, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO NOTHING
"""
INSERT_LINE = """
    INSERT INTO line_items (order_id, ext_line_item_number, offer_id, quantity, subscription_id, status,
                            currency_code, deployment_id, promotions)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def order_row(order: Order) -> tuple[Any, ...]:
    return (
        order.order_id, order.customer_id, order.reseller_id, order.order_type, order.status, order.created,
        order.external_reference_id, order.reference_order_id, order.currency_code, order.source, order.render(),
    )


def line_rows(order: Order) -> list[tuple[Any, ...]]:
    return [
        (
            order.order_id, line.ext_line_item_number, line.offer_id, line.quantity, line.subscription_id,
            line.status, line.currency_code, line.deployment_id,
            None if line.promotions is None else orjson.dumps([p.__dict__ for p in line.promotions]).decode(),
        )
        for line in order.line_items
    ]


# The order and its lines in one statement where the backend has writable CTEs (the lines as arrays, one
# per column): no line is written when the order id is taken; the count says whether the order was.
INSERT_ORDER_WITH_LINES = """
    WITH inserted AS (
        INSERT INTO orders (order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
                            reference_order_id, currency_code, source, body)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
        ON CONFLICT (order_id) DO NOTHING RETURNING order_id
    ), lines AS (
        INSERT INTO line_items (order_id, ext_line_item_number, offer_id, quantity, subscription_id, status,
                                currency_code, deployment_id, promotions)
        SELECT inserted.order_id, line.* FROM inserted,
            unnest(?12::integer[], ?13::text[], ?14::integer[], ?15::text[], ?16::text[], ?17::text[], ?18::text[],
                   ?19::text[]) AS line
    )
    SELECT count(*) FROM inserted
"""


async def _insert_rows(db: Db, order: Order) -> bool:
    lines = line_rows(order)
    if db.writable_ctes:
        columns = [list(column) for column in zip(*lines)][1:] if lines else [[] for _ in range(8)]
        return bool((await db.fetch(INSERT_ORDER_WITH_LINES, (*order_row(order), *columns)))[0][0])
    if not await db.execute(INSERT_ORDER, order_row(order)):
        return False
    await db.executemany(INSERT_LINE, lines)
    return True


async def insert_order(db: Db, order: Order, traceparent: str | None = None) -> bool:
    """False when the order id is taken (nothing is written then). `traceparent`: the request's trace
    context, carried by the order's event to webhooks."""
    if not await _insert_rows(db, order):
        return False
    await record_changes(db, [OrderChange(None, order)], traceparent=traceparent)
    return True


UPDATE_ORDER = "UPDATE orders SET external_reference_id = ?, status = ?, body = ? WHERE order_id = ?"
UPDATE_LINE = "UPDATE line_items SET status = ?, subscription_id = ? WHERE order_id = ? AND ext_line_item_number = ?"


async def store_changes(db: Db, before: Order, order: Order, traceparent: str | None = None) -> None:
    """What an existing order can change (reference, statuses, subscriptions), with its body re-rendered;
    nothing at all when the order is as it was."""
    if order == before:
        return
    await db.execute(UPDATE_ORDER, (order.external_reference_id, order.status, order.render(), order.order_id))
    await db.executemany(
        UPDATE_LINE,
        [(line.status, line.subscription_id, order.order_id, line.ext_line_item_number) for line in order.line_items],
    )
    await record_changes(db, [OrderChange(before.resource(), order)], traceparent=traceparent)


GET_ORDER = """
    SELECT order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
           reference_order_id, currency_code, source, body
    FROM orders WHERE order_id = ?
"""
GET_LINES = """
    SELECT ext_line_item_number, offer_id, quantity, subscription_id, status, currency_code, deployment_id,
           promotions
    FROM line_items WHERE order_id = ? ORDER BY ext_line_item_number
"""


async def load_order(db: Db, order_id: str) -> Order | None:
    rows = await db.fetch(GET_ORDER, (order_id,))
    if not rows:
        return None
    (oid, customer_id, reseller_id, order_type, status, created, external, reference, currency, source,
     body) = rows[0]
    lines = [
        LineItem(
            number, offer_id, quantity, subscription_id, line_status, line_currency, deployment_id,
            None if promotions is None else tuple(Promotion(**p) for p in orjson.loads(promotions)),
        )
        for number, offer_id, quantity, subscription_id, line_status, line_currency, deployment_id, promotions
        in await db.fetch(GET_LINES, (order_id,))
    ]
    # In the order they were placed (or imported) in, as the stored resource has them: a write changes what
    # it changes, not the order of the lines.
    placed = {line["extLineItemNumber"]: n for n, line in enumerate(orjson.loads(bytes(body))["lineItems"])}
    lines.sort(key=lambda line: placed.get(line.ext_line_item_number, len(placed)))
    return Order(
        order_id=oid, customer_id=customer_id, reseller_id=reseller_id, order_type=order_type, status=status,
        created=created, line_items=tuple(lines), external_reference_id=external, reference_order_id=reference,
        currency_code=currency, source=source,
    )


CUSTOMER_RESELLER = """
    SELECT c.reseller_id FROM customers c JOIN resellers r ON r.reseller_id = c.reseller_id
    WHERE c.customer_id = ? AND r.partner_id = ?
"""


async def customer_reseller(db: Db, customer_id: str, partner_id: str) -> str | None:
    """The reseller of a customer the partner can see."""
    rows = await db.fetch(CUSTOMER_RESELLER, (customer_id, partner_id))
    return str(rows[0][0]) if rows else None


# Both the customer (through its reseller) and the order (through the reseller it was placed through)
# must belong to the partner.
ORDER_VISIBLE = """
    SELECT 1 FROM orders o
    JOIN resellers r ON r.reseller_id = o.reseller_id
    JOIN customers c ON c.customer_id = o.customer_id
    JOIN resellers cr ON cr.reseller_id = c.reseller_id
    WHERE o.order_id = ?1 AND o.customer_id = ?2 AND r.partner_id = ?3 AND cr.partner_id = ?3
"""


# Taken by an import for its whole transaction; shared by every write that reads an order to write it back.
IMPORT_LOCK = "import"


async def lock_order(db: Db, order_id: str) -> None:
    """Held by every write that reads an order to write it back (PATCH, set-status, a RETURN's original),
    until it commits: two such writers on PostgreSQL would each write back what they read, and the later
    would undo the other's change. An import replaces orders without their locks (it may replace more than
    the server's lock table holds): such a write gives way to a running import and runs after it."""
    await db.lock_shared(IMPORT_LOCK)
    await db.lock(f"order\x1f{order_id}")


async def visible_order(db: Db, customer_id: str, order_id: str, partner_id: str) -> Order | None:
    """Inside a write: the order, locked (`lock_order`), if the partner sees it as this customer's."""
    await lock_order(db, order_id)
    if not await db.fetch(ORDER_VISIBLE, (order_id, customer_id, partner_id)):
        return None
    return await load_order(db, order_id)


RETURNED = """
    SELECT l.ext_line_item_number, SUM(l.quantity) FROM orders o JOIN line_items l ON l.order_id = o.order_id
    WHERE o.reference_order_id = ? AND o.order_type = 'RETURN' AND o.status NOT IN ({inactive})
    GROUP BY l.ext_line_item_number
""".format(inactive=",".join(f"'{status}'" for status in sorted(INACTIVE_STATUSES)))


async def returned_quantities(db: Db, original_id: str) -> dict[int, int]:
    """Quantities per line number of the RETURNs of an order that are neither failed nor cancelled."""
    # Two RETURNs of one original are checked and written one after the other: never over-returned.
    await lock_order(db, original_id)
    return {number: quantity for number, quantity in await db.fetch(RETURNED, (original_id,))}


async def set_order_status(db: Db, order_id: str, status: str) -> Order | None:
    await lock_order(db, order_id)
    before = await load_order(db, order_id)
    if before is None:
        return None
    if (before.order_type == "RETURN" and before.reference_order_id and before.status in INACTIVE_STATUSES
            and status not in INACTIVE_STATUSES):
        await _check_still_returnable(db, before)
    order = with_status(before, status, await _linked_subscriptions(db, before, status))
    await store_changes(db, before, order)
    if order.order_type == "RETURN" and order.reference_order_id:
        await _mark_returned_lines(db, order.reference_order_id)
    return order


async def _check_still_returnable(db: Db, order: Order) -> None:
    """A failed or cancelled RETURN made active again counts against what remains of its original once
    more: StorageError when what it returns is no longer there (other returns took it meanwhile)."""
    returned = await returned_quantities(db, order.reference_order_id)  # locks the original; not this one's
    original = await load_order(db, order.reference_order_id)
    if original is None:  # an imported RETURN of an order the gateway never had: nothing to count against
        return
    bought = {line.ext_line_item_number: line.quantity for line in original.line_items}
    for line in order.line_items:
        left = bought.get(line.ext_line_item_number, 0) - returned.get(line.ext_line_item_number, 0)
        if line.quantity > left:
            raise StorageError(f"order {order.order_id!r} would return {line.quantity} of line "
                               f"{line.ext_line_item_number} of order {order.reference_order_id!r}, where "
                               f"{max(left, 0)} remain")


COMPLETED_RETURNS = """
    SELECT l.ext_line_item_number, SUM(l.quantity) FROM orders o JOIN line_items l ON l.order_id = o.order_id
    WHERE o.reference_order_id = ? AND o.order_type = 'RETURN' AND o.status = ?
    GROUP BY l.ext_line_item_number
"""


async def _mark_returned_lines(db: Db, original_id: str) -> None:
    """Lines of the original that completed RETURNs have given back in full become cancelled."""
    await lock_order(db, original_id)
    original = await load_order(db, original_id)
    if original is None:
        return
    rows = await db.fetch(COMPLETED_RETURNS, (original_id, STATUS_COMPLETE))
    returned = {number: quantity for number, quantity in rows}
    lines = tuple(
        dataclasses.replace(line, status=STATUS_CANCELLED)
        if returned.get(line.ext_line_item_number, 0) >= line.quantity
        else line
        for line in original.line_items
    )
    await store_changes(db, original, dataclasses.replace(original, line_items=lines))


# The subscriptions a line completing without one takes: its original line's, else that of a completed RETURN
# of that line (a return of a pending order got a new one, and the original, completed later, another: the
# two never met again under `subscription-id`).
ORIGINAL_SUBSCRIPTIONS = "SELECT ext_line_item_number, subscription_id FROM line_items WHERE order_id = ?"
RETURN_SUBSCRIPTIONS = """
    SELECT l.ext_line_item_number, MIN(l.subscription_id) FROM orders o JOIN line_items l ON l.order_id = o.order_id
    WHERE o.reference_order_id = ? AND o.order_type = 'RETURN' AND o.status = ? AND l.subscription_id != ''
    GROUP BY l.ext_line_item_number
"""


async def _linked_subscriptions(db: Db, order: Order, status: str) -> dict[int, str]:
    if status != STATUS_COMPLETE or all(line.subscription_id for line in order.line_items):
        return {}
    original_id = order.order_id
    if order.order_type == "RETURN":
        # The original's lock (the caller holds its own; _mark_returned_lines takes it next, as here): the
        # original and its RETURNs completing at once, in several processes, see each other's subscriptions.
        original_id = order.reference_order_id
        await lock_order(db, original_id)
    rows = [*await db.fetch(RETURN_SUBSCRIPTIONS, (original_id, STATUS_COMPLETE)),
            *await db.fetch(ORIGINAL_SUBSCRIPTIONS, (original_id,))]
    return {int(number): subscription for number, subscription in rows if subscription}  # the original's last: wins


def with_status(order: Order, status: str, linked: Mapping[int, str]) -> Order:
    """The order moved to `status`: its lines follow (a cancelled line stays cancelled); on completion every
    line without a subscription gets one: the one `linked` gives its number, else a new one."""
    lines = []
    for line in order.line_items:
        line_status = line.status if line.status == STATUS_CANCELLED else status
        subscription = line.subscription_id
        if not subscription and status == STATUS_COMPLETE:
            subscription = linked.get(line.ext_line_item_number) or new_subscription_id()
        lines.append(dataclasses.replace(line, status=line_status, subscription_id=subscription))
    return dataclasses.replace(order, status=status, line_items=tuple(lines))
