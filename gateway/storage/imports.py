"""The operator's import: resellers, customers and orders upserted by id, all in one transaction."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import orjson

from gateway.order_events import OrderChange
from gateway.order_model import Order
from gateway.storage.changes import record_changes
from gateway.storage.db import Db, chunks, fetch_in, marks
from gateway.storage.orders import IMPORT_LOCK, INSERT_LINE, line_rows, order_row
from gateway.storage.partners import partner_exists
from gateway.storage.types import Customer, ImportCounts, ImportRecord, Reseller, StorageError

IMPORT_BATCH = 500  # orders upserted per statement batch during an import


async def import_records(db: Db, records: Iterable[tuple[int, ImportRecord]], events: bool = True) -> ImportCounts:
    """Upserts every record; StorageError names the line number of the first bad one. Each order inserted
    or changed gets its event, unless `events` is False."""
    counts = ImportCounts()
    await db.lock(IMPORT_LOCK)
    batch: list[tuple[int, Order]] = []
    for line_no, record in records:
        if isinstance(record, Order):
            batch.append((line_no, record))
            if len(batch) < IMPORT_BATCH:
                continue
        if batch:
            await _upsert_orders(db, batch, counts, events)
            batch = []
        if isinstance(record, Reseller):
            await _upsert_reseller(db, line_no, record, counts)
        elif isinstance(record, Customer):
            await _upsert_customer(db, line_no, record, counts)
    if batch:
        await _upsert_orders(db, batch, counts, events)
    return counts


GET_RESELLER = "SELECT partner_id, name FROM resellers WHERE reseller_id = ?"
UPSERT_RESELLER = """
    INSERT INTO resellers (reseller_id, partner_id, name) VALUES (?, ?, ?)
    ON CONFLICT (reseller_id) DO UPDATE SET partner_id = excluded.partner_id, name = excluded.name
"""
# A reseller moving to another partner changes what each partner sees of every customer it touches.
RESELLER_CUSTOMERS = """
    SELECT customer_id FROM customers WHERE reseller_id = ?1
    UNION SELECT customer_id FROM orders WHERE reseller_id = ?1
"""


async def _upsert_reseller(db: Db, line_no: int, record: Reseller, counts: ImportCounts) -> None:
    if not await partner_exists(db, record.partner_id):
        raise StorageError(f"line {line_no}: unknown partnerId {record.partner_id!r}")
    existing = await db.fetch(GET_RESELLER, (record.reseller_id,))
    if existing and tuple(existing[0]) == (record.partner_id, record.name):
        counts.unchanged += 1
        return
    await db.execute(UPSERT_RESELLER, (record.reseller_id, record.partner_id, record.name))
    if existing and existing[0][0] != record.partner_id:
        touched = await db.fetch(RESELLER_CUSTOMERS, (record.reseller_id,))
        await record_changes(db, [], reloads=[customer_id for (customer_id,) in touched], bulk=True)
    counts.written += 1


GET_CUSTOMER = "SELECT reseller_id, company_name, coterm_date FROM customers WHERE customer_id = ?"
UPSERT_CUSTOMER = """
    INSERT INTO customers (customer_id, reseller_id, company_name, coterm_date) VALUES (?, ?, ?, ?)
    ON CONFLICT (customer_id) DO UPDATE SET reseller_id = excluded.reseller_id,
        company_name = excluded.company_name, coterm_date = excluded.coterm_date
"""
RESELLER_EXISTS = "SELECT 1 FROM resellers WHERE reseller_id = ?"


async def _upsert_customer(db: Db, line_no: int, record: Customer, counts: ImportCounts) -> None:
    if not await db.fetch(RESELLER_EXISTS, (record.reseller_id,)):
        raise StorageError(f"line {line_no}: unknown resellerId {record.reseller_id!r}")
    existing = await db.fetch(GET_CUSTOMER, (record.customer_id,))
    if existing and tuple(existing[0]) == (record.reseller_id, record.company_name, record.coterm_date):
        counts.unchanged += 1
        return
    await db.execute(UPSERT_CUSTOMER, (record.customer_id, record.reseller_id, record.company_name, record.coterm_date))
    if existing:
        await record_changes(db, [], reloads=[record.customer_id], bulk=True)
    counts.written += 1


KNOWN_CUSTOMERS = "SELECT customer_id, reseller_id FROM customers WHERE customer_id IN ({marks})"
KNOWN_RESELLERS = "SELECT reseller_id FROM resellers WHERE reseller_id IN ({marks})"
STORED_ORDERS = "SELECT order_id, customer_id, reseller_id, body FROM orders WHERE order_id IN ({marks})"
DELETE_LINES = "DELETE FROM line_items WHERE order_id IN ({marks})"
UPSERT_ORDER = """
    INSERT INTO orders (order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
                        reference_order_id, currency_code, source, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, reseller_id = excluded.reseller_id,
        order_type = excluded.order_type, status = excluded.status, created = excluded.created,
        external_reference_id = excluded.external_reference_id, reference_order_id = excluded.reference_order_id,
        currency_code = excluded.currency_code, source = excluded.source, body = excluded.body
"""


async def _upsert_orders(db: Db, batch: list[tuple[int, Order]], counts: ImportCounts, events: bool) -> None:
    """Orders whose customer has no reseller given take the customer's; unchanged orders are left alone."""
    customers = dict(await fetch_in(db, KNOWN_CUSTOMERS, sorted({order.customer_id for _, order in batch})))
    resellers = {row[0] for row in await fetch_in(
        db, KNOWN_RESELLERS, sorted({order.reseller_id for _, order in batch if order.reseller_id})
    )}
    stored = {
        order_id: (customer_id, reseller_id, bytes(body))
        for order_id, customer_id, reseller_id, body
        in await fetch_in(db, STORED_ORDERS, [order.order_id for _, order in batch])
    }
    changed: dict[str, OrderChange] = {}
    moved: set[str] = set()  # customers of orders moved to another customer or reseller
    for line_no, order in batch:
        if order.customer_id not in customers:
            raise StorageError(f"line {line_no}: unknown customerId {order.customer_id!r}")
        if not order.reseller_id:
            order = dataclasses.replace(order, reseller_id=customers[order.customer_id])
        elif order.reseller_id not in resellers:
            raise StorageError(f"line {line_no}: unknown resellerId {order.reseller_id!r}")
        previous = stored.get(order.order_id)
        if previous == (order.customer_id, order.reseller_id, order.render()):
            counts.unchanged += 1
            continue
        if previous and previous[:2] != (order.customer_id, order.reseller_id):
            moved.update((previous[0], order.customer_id))
        changed[order.order_id] = OrderChange(orjson.loads(previous[2]) if previous else None, order)
        counts.written += 1
    if changed:
        await _write_orders(db, list(changed.values()), moved, events)


async def _write_orders(db: Db, changes: list[OrderChange], moved: set[str], events: bool) -> None:
    for chunk in chunks([change.order.order_id for change in changes]):
        await db.execute(DELETE_LINES.format(marks=marks(len(chunk))), chunk)
    await db.executemany(UPSERT_ORDER, [order_row(change.order) for change in changes])
    await db.executemany(INSERT_LINE, [row for change in changes for row in line_rows(change.order)])
    await record_changes(db, changes, reloads=moved, events=events, bulk=True)
