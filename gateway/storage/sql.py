"""The gateway's storage in SQL, shared by the backends: each supplies connections through `Db`.

Statements use `?` placeholders (`?1` where a parameter is used twice); a backend with another style
translates them. Rules that must hold across processes take a named lock (`Db.lock`) inside the
transaction: a no-op where the backend already serializes its writers.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import orjson

from gateway.idempotency import IdempotencyRecord, StoredResponse
from gateway.orders import (
    INACTIVE_STATUSES,
    STATUS_CANCELLED,
    STATUS_COMPLETE,
    LineItem,
    Order,
    Promotion,
    new_subscription_id,
)
from gateway.storage import (
    Credential,
    Customer,
    CustomerScope,
    ImportCounts,
    ImportRecord,
    IndexRow,
    Reseller,
    StorageError,
    StoredOutcome,
)

IMPORT_BATCH = 500  # orders upserted per statement batch during an import
MAX_IN_PARAMS = 900  # far below every backend's limit on parameters of one statement


# The schema, once for every backend; each fills in its own names for the types that differ.
SCHEMA_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created {bigint} NOT NULL
    );
    CREATE TABLE credentials (
        key_hash TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        fingerprint TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created {bigint} NOT NULL,
        revoked {bigint}
    );
    CREATE INDEX credentials_partner ON credentials(partner_id);
    CREATE TABLE resellers (
        reseller_id TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        name TEXT NOT NULL
    );
    CREATE INDEX resellers_partner ON resellers(partner_id);
    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        company_name TEXT NOT NULL,
        coterm_date TEXT,
        version {bigint} NOT NULL DEFAULT 0
    );
    CREATE INDEX customers_reseller ON customers(reseller_id);
    CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        order_type TEXT NOT NULL,
        status TEXT NOT NULL,
        created {bigint} NOT NULL,
        external_reference_id TEXT NOT NULL,
        reference_order_id TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        source TEXT NOT NULL,
        body {blob} NOT NULL
    );
    CREATE INDEX orders_customer_created ON orders(customer_id, created DESC, order_id DESC);
    CREATE INDEX orders_reseller ON orders(reseller_id);
    CREATE INDEX orders_reference ON orders(reference_order_id) WHERE reference_order_id != '';
    CREATE TABLE line_items (
        order_id TEXT NOT NULL REFERENCES orders(order_id) ON DELETE CASCADE,
        ext_line_item_number INTEGER NOT NULL,
        offer_id TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        subscription_id TEXT NOT NULL,
        status TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        deployment_id TEXT,
        promotions TEXT,
        PRIMARY KEY (order_id, ext_line_item_number)
    ) {without_rowid};
    """,
    """
    CREATE TABLE idempotency (
        partner_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        body {blob} NOT NULL,
        content_type TEXT NOT NULL,
        location TEXT,
        created {bigint} NOT NULL,
        PRIMARY KEY (partner_id, key)
    );
    CREATE INDEX idempotency_request ON idempotency(partner_id, request_id);
    CREATE INDEX idempotency_created ON idempotency(created);
    """,
)


class Db(Protocol):
    """One connection (or one transaction on it), as the shared storage uses it."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Rows affected."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def lock(self, name: str) -> None:
        """Held until the transaction ends: transactions taking the same name run one after another."""


class SqlStorage:
    """Every query and rule of the gateway's storage, over a `Db`; a backend supplies the connections."""

    @property
    def _reader(self) -> Db:
        raise NotImplementedError

    def _transaction(self) -> AbstractAsyncContextManager[Db]:
        raise NotImplementedError

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._reader.fetch(sql, params)

    def transaction(self) -> AbstractAsyncContextManager[SqlTransaction]:
        return _wrap(self._transaction())

    async def stored_outcome(self, partner_id: str, key: str, not_before: int) -> StoredOutcome | None:
        rows = await self._rows(GET_OUTCOME, (partner_id, key))
        return _outcome(rows[0]) if rows and rows[0][-1] >= not_before else None

    REQUEST_ID_USED = "SELECT 1 FROM idempotency WHERE partner_id = ? AND request_id = ? AND created >= ? LIMIT 1"

    async def request_id_used(self, partner_id: str, request_id: str, not_before: int) -> bool:
        return bool(await self._rows(self.REQUEST_ID_USED, (partner_id, request_id, not_before)))

    PURGE_OUTCOMES = "DELETE FROM idempotency WHERE created < ?"

    async def purge_outcomes(self, before: int) -> int:
        async with self._transaction() as db:
            return await db.execute(self.PURGE_OUTCOMES, (before,))

    # -- health and keys ---------------------------------------------------------------------------

    # Reads a real table: a database that lost its schema is not ready either.
    PING = "SELECT count(*) FROM meta"

    async def ping(self) -> None:
        await self._rows(self.PING)

    GET_META = "SELECT value FROM meta WHERE key = ?"
    INSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"

    async def signing_key(self, candidate: str) -> str:
        async with self._transaction() as db:
            await db.execute(self.INSERT_META, ("jwt_signing_key", candidate))
            rows = (await db.fetch(self.GET_META, ("jwt_signing_key",)))
        return str(rows[0][0])

    # -- partners and credentials ------------------------------------------------------------------

    INSERT_PARTNER = "INSERT INTO partners (partner_id, name, created) VALUES (?, ?, ?)"
    PARTNER_EXISTS = "SELECT 1 FROM partners WHERE partner_id = ?"

    async def create_partner(self, partner_id: str, name: str) -> None:
        async with self._transaction() as db:
            if (await db.fetch(self.PARTNER_EXISTS, (partner_id,))):
                raise StorageError(f"partner {partner_id!r} already exists")
            await db.execute(self.INSERT_PARTNER, (partner_id, name, int(time.time())))

    async def partner_exists(self, partner_id: str) -> bool:
        return bool(await self._rows(self.PARTNER_EXISTS, (partner_id,)))

    INSERT_CREDENTIAL = (
        "INSERT INTO credentials (key_hash, partner_id, fingerprint, secret_hash, created) VALUES (?, ?, ?, ?, ?)"
    )

    async def create_credential(self, partner_id: str, key_hash: str, fingerprint: str, secret_hash: str) -> None:
        async with self._transaction() as db:
            if not (await db.fetch(self.PARTNER_EXISTS, (partner_id,))):
                raise StorageError(f"no partner {partner_id!r}")
            await db.execute(self.INSERT_CREDENTIAL, (key_hash, partner_id, fingerprint, secret_hash, int(time.time())))

    GET_CREDENTIAL = "SELECT partner_id, fingerprint, secret_hash, revoked FROM credentials WHERE key_hash = ?"

    async def get_credential(self, key_hash: str) -> Credential | None:
        rows = await self._rows(self.GET_CREDENTIAL, (key_hash,))
        if not rows:
            return None
        partner_id, fingerprint, secret_hash, revoked = rows[0]
        return Credential(partner_id, fingerprint, secret_hash, revoked is not None)

    REVOKE_CREDENTIAL = "UPDATE credentials SET revoked = COALESCE(revoked, ?) WHERE key_hash = ?"

    async def revoke_credential(self, key_hash: str) -> bool:
        async with self._transaction() as db:
            return await db.execute(self.REVOKE_CREDENTIAL, (int(time.time()), key_hash)) > 0

    # -- reads for history and details -------------------------------------------------------------

    CUSTOMER_SCOPE = """
        SELECT c.coterm_date, c.version FROM customers c JOIN resellers r ON r.reseller_id = c.reseller_id
        WHERE c.customer_id = ? AND r.partner_id = ?
    """

    async def customer_scope(self, customer_id: str, partner_id: str) -> CustomerScope | None:
        rows = await self._rows(self.CUSTOMER_SCOPE, (customer_id, partner_id))
        return CustomerScope(customer_id, rows[0][0], rows[0][1]) if rows else None

    ORDER_INDEX = """
        SELECT o.created, o.order_id, o.order_type, o.status, o.reseller_id, o.reference_order_id,
               o.external_reference_id
        FROM orders o JOIN resellers r ON r.reseller_id = o.reseller_id
        WHERE o.customer_id = ? AND r.partner_id = ?
    """
    ORDER_INDEX_LINES = """
        SELECT l.order_id, l.offer_id, l.subscription_id
        FROM line_items l JOIN orders o ON o.order_id = l.order_id
        WHERE o.customer_id = ?
    """

    async def order_index(self, customer_id: str, partner_id: str) -> list[IndexRow]:
        offers: dict[str, set[str]] = {}
        subscriptions: dict[str, set[str]] = {}
        for order_id, offer_id, subscription_id in await self._rows(self.ORDER_INDEX_LINES, (customer_id,)):
            offers.setdefault(order_id, set()).add(offer_id)
            if subscription_id:
                subscriptions.setdefault(order_id, set()).add(subscription_id)
        empty: frozenset[str] = frozenset()
        return [
            IndexRow(
                created, order_id, order_type, status, reseller_id, reference, external,
                frozenset(offers.get(order_id, empty)), frozenset(subscriptions.get(order_id, empty)),
            )
            for created, order_id, order_type, status, reseller_id, reference, external
            in await self._rows(self.ORDER_INDEX, (customer_id, partner_id))
        ]

    async def order_bodies(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for chunk in _chunks(order_ids, MAX_IN_PARAMS):
            sql = f"SELECT order_id, body FROM orders WHERE order_id IN ({_marks(len(chunk))})"
            out.update((order_id, bytes(body)) for order_id, body in await self._rows(sql, chunk))
        return out

    # Both the customer (through its reseller) and the order (through the reseller it was placed through)
    # must belong to the partner.
    ORDER_BODY = """
        SELECT o.body FROM orders o
        JOIN resellers r ON r.reseller_id = o.reseller_id
        JOIN customers c ON c.customer_id = o.customer_id
        JOIN resellers cr ON cr.reseller_id = c.reseller_id
        WHERE o.order_id = ?1 AND o.customer_id = ?2 AND r.partner_id = ?3 AND cr.partner_id = ?3
    """

    async def order_body(self, customer_id: str, order_id: str, partner_id: str) -> bytes | None:
        rows = await self._rows(self.ORDER_BODY, (order_id, customer_id, partner_id))
        return bytes(rows[0][0]) if rows else None

    GET_ORDER = """
        SELECT order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
               reference_order_id, currency_code, source
        FROM orders WHERE order_id = ?
    """
    GET_LINES = """
        SELECT ext_line_item_number, offer_id, quantity, subscription_id, status, currency_code, deployment_id,
               promotions
        FROM line_items WHERE order_id = ? ORDER BY ext_line_item_number
    """

    # -- writes --------------------------------------------------------------------------------------

    async def import_records(self, records: Iterable[tuple[int, ImportRecord]]) -> ImportCounts:
        counts = ImportCounts()
        async with self._transaction() as db:
            await db.lock("import")
            batch: list[tuple[int, Order]] = []
            for line_no, record in records:
                if isinstance(record, Order):
                    batch.append((line_no, record))
                    if len(batch) >= IMPORT_BATCH:
                        await _upsert_orders(db, batch, counts)
                        batch = []
                    continue
                if batch:
                    await _upsert_orders(db, batch, counts)
                    batch = []
                if isinstance(record, Reseller):
                    await _upsert_reseller(db, line_no, record, counts)
                else:
                    await _upsert_customer(db, line_no, record, counts)
            if batch:
                await _upsert_orders(db, batch, counts)
        return counts

    UPDATE_LINE = "UPDATE line_items SET status = ?, subscription_id = ? WHERE order_id = ? AND ext_line_item_number = ?"
    RETURNED_QUANTITIES = """
        SELECT l.ext_line_item_number, SUM(l.quantity) FROM orders o JOIN line_items l ON l.order_id = o.order_id
        WHERE o.reference_order_id = ? AND o.order_type = 'RETURN' AND o.status = ?
        GROUP BY l.ext_line_item_number
    """

    async def set_order_status(self, order_id: str, status: str) -> Order | None:
        async with self._transaction() as db:
            await db.lock(f"order\x1f{order_id}")
            order = await _load_order(db, order_id)
            if order is None:
                return None
            order = _with_status(order, status)
            await _store_changes(db, order)
            if order.order_type == "RETURN" and order.reference_order_id:
                await self._mark_returned_lines(db, order.reference_order_id)
        return order

    async def _mark_returned_lines(self, db: Db, original_id: str) -> None:
        """Lines of the original that completed RETURNs have given back in full become cancelled."""
        await db.lock(f"order\x1f{original_id}")
        original = await _load_order(db, original_id)
        if original is None:
            return
        rows = await db.fetch(self.RETURNED_QUANTITIES, (original_id, STATUS_COMPLETE))
        returned: dict[int, int] = {number: quantity for number, quantity in rows}
        lines = tuple(
            _replace_line(line, status=STATUS_CANCELLED)
            if returned.get(line.ext_line_item_number, 0) >= line.quantity
            else line
            for line in original.line_items
        )
        if lines != original.line_items:
            await _store_changes(db, _replace_order(original, line_items=lines))


# -- module-level helpers for the write paths ---------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _replace_line(line: LineItem, **changes: Any) -> LineItem:
    return dataclasses.replace(line, **changes)


def _replace_order(order: Order, **changes: Any) -> Order:
    return dataclasses.replace(order, **changes)


def _with_status(order: Order, status: str) -> Order:
    """The order moved to `status`: its lines follow (a cancelled line stays cancelled); on completion every
    line without a subscription gets one."""
    lines = []
    for line in order.line_items:
        line_status = line.status if line.status == STATUS_CANCELLED else status
        subscription = line.subscription_id or (new_subscription_id() if status == STATUS_COMPLETE else "")
        lines.append(_replace_line(line, status=line_status, subscription_id=subscription))
    return _replace_order(order, status=status, line_items=tuple(lines))


UPDATE_ORDER = "UPDATE orders SET external_reference_id = ?, status = ?, body = ? WHERE order_id = ?"


async def _store_changes(db: Db, order: Order) -> None:
    """What an existing order can change (reference, statuses, subscriptions), with its body re-rendered."""
    await db.execute(UPDATE_ORDER, (order.external_reference_id, order.status, order.render(), order.order_id))
    await db.executemany(
        SqlStorage.UPDATE_LINE,
        [(line.status, line.subscription_id, order.order_id, line.ext_line_item_number) for line in order.line_items],
    )
    await db.execute(BUMP_CUSTOMERS.format(marks="?"), (order.customer_id,))


async def _load_order(db: Db, order_id: str) -> Order | None:
    rows = (await db.fetch(SqlStorage.GET_ORDER, (order_id,)))
    if not rows:
        return None
    (oid, customer_id, reseller_id, order_type, status, created, external, reference, currency, source) = rows[0]
    lines = tuple(
        LineItem(
            number, offer_id, quantity, subscription_id, line_status, line_currency, deployment_id,
            None if promotions is None else tuple(Promotion(**p) for p in orjson.loads(promotions)),
        )
        for number, offer_id, quantity, subscription_id, line_status, line_currency, deployment_id, promotions
        in await db.fetch(SqlStorage.GET_LINES, (order_id,))
    )
    return Order(
        order_id=oid, customer_id=customer_id, reseller_id=reseller_id, order_type=order_type, status=status,
        created=created, line_items=lines, external_reference_id=external, reference_order_id=reference,
        currency_code=currency, source=source,
    )


BUMP_CUSTOMERS = "UPDATE customers SET version = version + 1 WHERE customer_id IN ({marks})"

GET_RESELLER = "SELECT partner_id, name FROM resellers WHERE reseller_id = ?"
UPSERT_RESELLER = """
    INSERT INTO resellers (reseller_id, partner_id, name) VALUES (?, ?, ?)
    ON CONFLICT (reseller_id) DO UPDATE SET partner_id = excluded.partner_id, name = excluded.name
"""
# A reseller moving to another partner changes what that partner sees of every customer it touches.
BUMP_RESELLER_CUSTOMERS = """
    UPDATE customers SET version = version + 1
    WHERE reseller_id = ?1 OR customer_id IN (SELECT customer_id FROM orders WHERE reseller_id = ?1)
"""


async def _upsert_reseller(db: Db, line_no: int, record: Reseller, counts: ImportCounts) -> None:
    if not (await db.fetch(SqlStorage.PARTNER_EXISTS, (record.partner_id,))):
        raise StorageError(f"line {line_no}: unknown partnerId {record.partner_id!r}")
    existing = (await db.fetch(GET_RESELLER, (record.reseller_id,)))
    if existing and tuple(existing[0]) == (record.partner_id, record.name):
        counts.unchanged += 1
        return
    await db.execute(UPSERT_RESELLER, (record.reseller_id, record.partner_id, record.name))
    if existing and existing[0][0] != record.partner_id:
        await db.execute(BUMP_RESELLER_CUSTOMERS, (record.reseller_id,))
    counts.written += 1


GET_CUSTOMER = "SELECT reseller_id, company_name, coterm_date FROM customers WHERE customer_id = ?"
UPSERT_CUSTOMER = """
    INSERT INTO customers (customer_id, reseller_id, company_name, coterm_date) VALUES (?, ?, ?, ?)
    ON CONFLICT (customer_id) DO UPDATE SET reseller_id = excluded.reseller_id,
        company_name = excluded.company_name, coterm_date = excluded.coterm_date, version = customers.version + 1
"""
RESELLER_EXISTS = "SELECT 1 FROM resellers WHERE reseller_id = ?"


async def _upsert_customer(db: Db, line_no: int, record: Customer, counts: ImportCounts) -> None:
    if not (await db.fetch(RESELLER_EXISTS, (record.reseller_id,))):
        raise StorageError(f"line {line_no}: unknown resellerId {record.reseller_id!r}")
    existing = (await db.fetch(GET_CUSTOMER, (record.customer_id,)))
    if existing and tuple(existing[0]) == (record.reseller_id, record.company_name, record.coterm_date):
        counts.unchanged += 1
        return
    await db.execute(UPSERT_CUSTOMER, (record.customer_id, record.reseller_id, record.company_name, record.coterm_date))
    counts.written += 1


UPSERT_ORDER = """
    INSERT INTO orders (order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
                        reference_order_id, currency_code, source, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, reseller_id = excluded.reseller_id,
        order_type = excluded.order_type, status = excluded.status, created = excluded.created,
        external_reference_id = excluded.external_reference_id, reference_order_id = excluded.reference_order_id,
        currency_code = excluded.currency_code, source = excluded.source, body = excluded.body
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


async def _upsert_orders(db: Db, batch: list[tuple[int, Order]], counts: ImportCounts) -> None:
    """Orders whose customer has no reseller given take the customer's; unchanged orders are left alone."""
    customer_ids = sorted({order.customer_id for _, order in batch})
    customers: dict[str, str] = {}
    for chunk in _chunks(customer_ids, MAX_IN_PARAMS):
        sql = f"SELECT customer_id, reseller_id FROM customers WHERE customer_id IN ({_marks(len(chunk))})"
        customers.update((customer_id, reseller_id) for customer_id, reseller_id in await db.fetch(sql, chunk))
    reseller_ids = sorted({order.reseller_id for _, order in batch if order.reseller_id})
    known_resellers: set[str] = set()
    for chunk in _chunks(reseller_ids, MAX_IN_PARAMS):
        sql = f"SELECT reseller_id FROM resellers WHERE reseller_id IN ({_marks(len(chunk))})"
        known_resellers.update(row[0] for row in await db.fetch(sql, chunk))
    order_ids = [order.order_id for _, order in batch]
    stored: dict[str, tuple[str, str, bytes]] = {}
    for chunk in _chunks(order_ids, MAX_IN_PARAMS):
        sql = f"SELECT order_id, customer_id, reseller_id, body FROM orders WHERE order_id IN ({_marks(len(chunk))})"
        stored.update(
            (oid, (cid, rid, bytes(body))) for oid, cid, rid, body in await db.fetch(sql, chunk)
        )

    changed: dict[str, Order] = {}
    touched_customers: set[str] = set()
    for line_no, order in batch:
        if order.customer_id not in customers:
            raise StorageError(f"line {line_no}: unknown customerId {order.customer_id!r}")
        if not order.reseller_id:
            order = _replace_order(order, reseller_id=customers[order.customer_id])
        elif order.reseller_id not in known_resellers:
            raise StorageError(f"line {line_no}: unknown resellerId {order.reseller_id!r}")
        previous = stored.get(order.order_id)
        if previous == (order.customer_id, order.reseller_id, order.render()):
            counts.unchanged += 1
            continue
        if previous is not None:
            touched_customers.add(previous[0])
        touched_customers.add(order.customer_id)
        changed[order.order_id] = order
        counts.written += 1
    if not changed:
        return
    for chunk in _chunks(list(changed), MAX_IN_PARAMS):
        await db.execute(f"DELETE FROM line_items WHERE order_id IN ({_marks(len(chunk))})", chunk)
    await db.executemany(UPSERT_ORDER, [order_row(order) for order in changed.values()])
    await db.executemany(INSERT_LINE, [row for order in changed.values() for row in line_rows(order)])
    for chunk in _chunks(sorted(touched_customers), MAX_IN_PARAMS):
        await db.execute(BUMP_CUSTOMERS.format(marks=_marks(len(chunk))), chunk)




GET_OUTCOME = """
    SELECT fingerprint, status, body, content_type, location, created FROM idempotency
    WHERE partner_id = ? AND key = ?
"""
DROP_OUTCOME = "DELETE FROM idempotency WHERE partner_id = ? AND key = ?"
INSERT_OUTCOME = """
    INSERT INTO idempotency (partner_id, key, fingerprint, request_id, status, body, content_type, location, created)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _outcome(row: Any) -> StoredOutcome:
    fingerprint, status, body, content_type, location, _ = row
    return StoredOutcome(fingerprint, StoredResponse(status, bytes(body), content_type, location))


@asynccontextmanager
async def _wrap(transaction: AbstractAsyncContextManager[Db]) -> AsyncIterator[SqlTransaction]:
    async with transaction as db:
        yield SqlTransaction(db)


class SqlTransaction:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return (await self._db.fetch(sql, params))

    async def stored_outcome(self, partner_id: str, key: str, not_before: int) -> StoredOutcome | None:
        # Same-key requests in any process wait here for the first one's transaction to end, then see its outcome.
        await self._db.lock(f"outcome\x1f{partner_id}\x1f{key}")
        rows = await self._rows(GET_OUTCOME, (partner_id, key))
        if not rows:
            return None
        if rows[0][-1] >= not_before:
            return _outcome(rows[0])
        await self._db.execute(DROP_OUTCOME, (partner_id, key))  # expired: the key is free again
        return None

    async def store_outcome(self, record: IdempotencyRecord, created: int) -> None:
        claim, response = record.claim, record.response
        await self._db.execute(
            INSERT_OUTCOME,
            (claim.partner_id, claim.key, claim.fingerprint, claim.request_id, response.status, response.body,
             response.content_type, response.location, created),
        )

    CUSTOMER_RESELLER = """
        SELECT c.reseller_id FROM customers c JOIN resellers r ON r.reseller_id = c.reseller_id
        WHERE c.customer_id = ? AND r.partner_id = ?
    """

    async def customer_reseller(self, customer_id: str, partner_id: str) -> str | None:
        rows = await self._rows(self.CUSTOMER_RESELLER, (customer_id, partner_id))
        return str(rows[0][0]) if rows else None

    async def visible_order(self, customer_id: str, order_id: str, partner_id: str) -> Order | None:
        if not await self._rows(SqlStorage.ORDER_BODY, (order_id, customer_id, partner_id)):
            return None
        return await _load_order(self._db, order_id)

    RETURNED = """
        SELECT l.ext_line_item_number, SUM(l.quantity) FROM orders o JOIN line_items l ON l.order_id = o.order_id
        WHERE o.reference_order_id = ? AND o.order_type = 'RETURN' AND o.status NOT IN ({inactive})
        GROUP BY l.ext_line_item_number
    """.format(inactive=",".join(f"'{status}'" for status in sorted(INACTIVE_STATUSES)))

    async def returned_quantities(self, original_id: str) -> dict[int, int]:
        # Two RETURNs of one original are checked and written one after the other: never over-returned.
        await self._db.lock(f"order\x1f{original_id}")
        return {number: quantity for number, quantity in await self._rows(self.RETURNED, (original_id,))}

    async def insert_order(self, order: Order) -> bool:
        if await self._rows("SELECT 1 FROM orders WHERE order_id = ?", (order.order_id,)):
            return False
        await self._db.execute(INSERT_ORDER, order_row(order))
        await self._db.executemany(INSERT_LINE, line_rows(order))
        await self._db.execute(BUMP_CUSTOMERS.format(marks="?"), (order.customer_id,))
        return True

    async def update_order(self, order: Order) -> None:
        await _store_changes(self._db, order)


INSERT_ORDER = UPSERT_ORDER.split("ON CONFLICT")[0]
