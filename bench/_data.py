"""Benchmark databases for bench/history.py, built with the gateway's own schema and order rendering.

The schema comes from opening the file through gateway.storage.open_storage (which migrates it), the
partner and its credential from gateway.partners.create_partner; resellers, customers, orders and line items
are then bulk-inserted with the standard library's sqlite3, each row built by gateway.storage.sqlite's
order_row/line_rows from a gateway.order_model.Order, so every stored body is exactly what the gateway serves.

Everything is generated from fixed seeds. The hot customer's 10,000 orders are the same in every database
(same ids, same bodies) given the same anchor time, which the second database built takes from the first
one's metadata. A finished database is cached as bench/data/history-<orders>-g<GENERATOR>-s<schema>.db
(schema: the gateway's migration count) beside a .json of its metadata, including the partner's API key and
client secret. A build goes to a temporary name first, so an interrupted build is never mistaken for a
finished one, and replaces the caches of the same size made by another generator or schema.

ensure_postgres builds the same data (same generator, seeds and anchor: byte-identical bodies) in a PostgreSQL
schema of its own, `<base>_<orders>` (base: the URL's search_path, default bench_history). The schema is
dropped and created, migrated and given its partner by gateway.storage.open_storage, then filled with asyncpg
COPY (copy_records_to_table) of the same order_row/line_rows rows, with the migration's secondary indexes
and foreign keys of orders and line_items dropped for the load and re-created from their own definitions
afterwards (as pg_restore does), then VACUUM ANALYZE. The metadata (the .json's content) becomes the schema's
comment, written last: a schema whose comment matches and whose orders table holds the expected count is
reused as is.

What a database holds is a Layout (resellers, customers, the stream of orders): history_layout is the one
above; ensure/ensure_postgres take another (bench/_layouts.py) with a `kind` naming its files and schemas,
and build/build_postgres load any layout the same way.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.order_model import LineItem, Order, Promotion
from gateway.partners import create_partner
from gateway.storage import open_storage
from gateway.storage.orders import INSERT_LINE, line_rows, order_row
from gateway.storage.pg_migrations import MIGRATIONS as PG_MIGRATIONS
from gateway.storage.sqlite import MIGRATIONS

GENERATOR = 1  # bump when the generated data changes: old caches are then ignored
SCHEMA = len(MIGRATIONS)  # a new migration means a rebuild, so the data is always laid out as a fresh install
PG_SCHEMA = len(PG_MIGRATIONS)
PG_BASE_SCHEMA = "bench_history"
PG_BATCH = 50_000
DATA_DIR = Path(__file__).resolve().parent / "data"

PARTNER_ID = "PBENCH0001"
HOT_CUSTOMER = "9100000000"
HOT_RESELLER = "8100000000"
HOT_ORDERS = 10_000
HOT_DAYS = 300  # the hot customer's orders are spread over the last 300 days, one per distinct second
ORDERS_PER_CUSTOMER = 250  # mean, for the other customers
RESELLERS = 100
BATCH = 20_000

OFFERS = [f"8000{n:04d}CA01A12" for n in range(60)]
ORDER_TYPES = ("NEW", "RENEWAL", "RETURN", "TRANSFER")
ORDER_TYPE_WEIGHTS = (60, 30, 5, 5)
STATUSES = ("1000", "1002", "1004", "1008", "1020", "1022", "1024", "1026")
STATUS_WEIGHTS = (80, 8, 2, 4, 2, 2, 1, 1)

INSERT_ORDER = """
    INSERT INTO orders (order_id, customer_id, reseller_id, order_type, status, created, external_reference_id,
                        reference_order_id, currency_code, source, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass
class Layout:
    """What a database holds: its resellers and customers, then every order (ascending order id, so that
    inserts append to the primary key) and the metadata to record beside them."""

    resellers: list[tuple[str, str, str]]
    customers: list[tuple[str, str, str, str | None]]
    orders: Iterator[Order]
    meta: dict[str, Any] = field(default_factory=dict)


LayoutOf = Callable[[int, int], Layout]  # (orders, anchor) -> Layout


def history_layout(orders: int, anchor: int) -> Layout:
    """The hot customer's 10,000 orders, then the other customers' (about 250 each)."""
    if orders < HOT_ORDERS:
        raise ValueError(f"a database needs at least {HOT_ORDERS} orders (the hot customer's)")
    others = orders - HOT_ORDERS
    customer_count = others // ORDERS_PER_CUSTOMER if others else 0
    counts = _split(others, customer_count, random.Random(1))
    rng = random.Random(2)
    customers: list[tuple[str, str, str, str | None]] = [(HOT_CUSTOMER, HOT_RESELLER, "Hot Customer Inc.", None)]
    customers += [
        (_customer_id(n), _reseller_id(rng.randrange(RESELLERS)), f"Customer {n}",
         _coterm(rng, anchor) if rng.random() < 0.5 else None)
        for n in range(customer_count)
    ]
    return Layout(
        resellers=[(HOT_RESELLER, PARTNER_ID, "Hot Reseller")]
        + [(_reseller_id(n), PARTNER_ID, f"Reseller {n}") for n in range(RESELLERS)],
        customers=customers,
        orders=_all_orders(anchor, customers[1:], counts),
        meta={"hotCustomer": HOT_CUSTOMER, "hotOrders": HOT_ORDERS},
    )


def paths(orders: int, kind: str = "history") -> tuple[Path, Path]:
    stem = f"{kind}-{orders}-g{GENERATOR}-s{SCHEMA}"
    return DATA_DIR / f"{stem}.db", DATA_DIR / f"{stem}.json"


def cached(orders: int, kind: str = "history") -> dict[str, Any] | None:
    db, meta = paths(orders, kind)
    if not (db.exists() and meta.exists()):
        return None
    info = json.loads(meta.read_text())
    wanted = {"generator": GENERATOR, "schema": SCHEMA, "orders": orders}
    return info if all(info.get(k) == v for k, v in wanted.items()) else None


def anchor_from_siblings() -> int | None:
    for meta in sorted(DATA_DIR.glob(f"history-*-g{GENERATOR}-s{SCHEMA}.json")):
        try:
            return int(json.loads(meta.read_text())["anchor"])
        except (ValueError, KeyError, OSError):
            continue
    return None


def ensure(orders: int, log: Any = print, kind: str = "history", layout: LayoutOf = history_layout) -> dict[str, Any]:
    """Metadata of the cached database of `orders` orders laid out by `layout`, built first when missing."""
    info = cached(orders, kind)
    if info is not None:
        log(f"database: {paths(orders, kind)[0]} (cached; built in {info['buildSeconds']:.0f} s)")
        return info
    for stale in DATA_DIR.glob(f"{kind}-{orders}-g*"):
        stale.unlink()
    anchor = anchor_from_siblings() or (int(time.time()) // 86400) * 86400
    log(f"database: building {orders:,} orders into {paths(orders, kind)[0]} ...")
    started = time.perf_counter()
    info = build(paths(orders, kind)[0], orders, layout(orders, anchor), anchor)
    info["buildSeconds"] = round(time.perf_counter() - started, 1)
    paths(orders, kind)[1].write_text(json.dumps(info, indent=1) + "\n")
    log(f"database: built {orders:,} orders ({info['customers']:,} customers) in {info['buildSeconds']:.1f} s")
    return info


def build(final: Path, orders: int, layout: Layout, anchor: int) -> dict[str, Any]:
    """Builds the SQLite file `final` (through a temporary name) holding `layout`; its metadata."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), final, Path(f"{final}-wal"), Path(f"{final}-shm")):
        leftover.unlink(missing_ok=True)
    credential = asyncio.run(_create_schema_and_partner(f"sqlite:///{tmp}"))
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        # Bulk load: no journal, no fsync; the file goes back to WAL (the gateway's mode) at the end.
        db.execute("PRAGMA journal_mode = DELETE")
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000", "temp_store = MEMORY"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("BEGIN")
        db.executemany("INSERT INTO resellers (reseller_id, partner_id, name) VALUES (?, ?, ?)", layout.resellers)
        db.executemany(
            "INSERT INTO customers (customer_id, reseller_id, company_name, coterm_date) VALUES (?, ?, ?, ?)",
            layout.customers,
        )
        order_batch: list[tuple[Any, ...]] = []
        line_batch: list[tuple[Any, ...]] = []
        for order in layout.orders:
            order_batch.append(order_row(order))
            line_batch.extend(line_rows(order))
            if len(order_batch) >= BATCH:
                db.executemany(INSERT_ORDER, order_batch)
                db.executemany(INSERT_LINE, line_batch)
                order_batch, line_batch = [], []
        db.executemany(INSERT_ORDER, order_batch)
        db.executemany(INSERT_LINE, line_batch)
        db.execute("COMMIT")
        (stored,) = db.execute("SELECT COUNT(*) FROM orders").fetchone()
        if stored != orders:
            raise RuntimeError(f"built {stored} orders, expected {orders}")
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    os.replace(tmp, final)
    return {
        "generator": GENERATOR,
        "schema": SCHEMA,
        "orders": orders,
        "customers": len(layout.customers),
        "anchor": anchor,
        **layout.meta,
        **credential,
    }


async def _create_schema_and_partner(url: str) -> dict[str, str]:
    async with open_storage(url) as storage:
        return (await create_partner(storage, "Benchmark Partner", PARTNER_ID)).as_json()


def _reseller_id(n: int) -> str:
    return str(8_000_000_000 + n)


def _customer_id(n: int) -> str:
    return str(9_000_000_000 + n)


def _coterm(rng: random.Random, anchor: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(anchor + rng.randrange(1, 365) * 86400))


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` uneven positive counts (about 0.2x to 1.8x the mean)."""
    if parts == 0:
        return []
    weights = [rng.uniform(0.2, 1.8) for _ in range(parts)]
    scale = total / sum(weights)
    counts = [max(1, int(w * scale)) for w in weights]
    counts[-1] += total - sum(counts)
    if counts[-1] < 1:
        raise ValueError("bad split")
    return counts


def _all_orders(anchor: int, customers: list[tuple[Any, ...]], counts: list[int]) -> Iterator[Order]:
    """The hot customer's orders first (ids 51xxxxxxxx), then every other customer's (ids 6xxxxxxxxx),
    in ascending order id so that inserts append to the primary key."""
    rng = random.Random(3)
    seconds = rng.sample(range(1, HOT_DAYS * 86400), HOT_ORDERS)
    seconds.sort(reverse=True)  # oldest first
    for n, ago in enumerate(seconds):
        yield _order(rng, str(5_100_000_000 + n), HOT_CUSTOMER, HOT_RESELLER, anchor - ago, n)
    rng = random.Random(4)
    next_id = 6_000_000_000
    for (customer_id, reseller_id, _, _), count in zip(customers, counts):
        created = sorted(anchor - rng.randrange(1, 3 * 365 * 86400) for _ in range(count))
        for n, when in enumerate(created):
            yield _order(rng, str(next_id), customer_id, reseller_id, when, n)
            next_id += 1


def _order(rng: random.Random, order_id: str, customer_id: str, reseller_id: str, created: int, n: int) -> Order:
    order_type = rng.choices(ORDER_TYPES, ORDER_TYPE_WEIGHTS)[0]
    status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
    lines = tuple(
        LineItem(
            ext_line_item_number=k + 1,
            offer_id=rng.choice(OFFERS),
            quantity=rng.randint(1, 20),
            subscription_id=str(10_000_000 + rng.randrange(89_999_999)) if status == "1000" else "",
            status=status,
            currency_code="USD",
            deployment_id=str(rng.randrange(100_000)) if rng.random() < 0.2 else None,
            promotions=(Promotion("SUMMER_SALE_123", "SUCCESS"),) if rng.random() < 0.1 else None,
        )
        for k in range(rng.choice((1, 1, 2, 3)))
    )
    reference = str(int(order_id) - 1 - rng.randrange(n)) if order_type == "RETURN" and n > 0 else ""
    return Order(
        order_id=order_id, customer_id=customer_id, reseller_id=reseller_id, order_type=order_type,
        status=status, created=created, line_items=lines, external_reference_id=f"ext-{order_id}",
        reference_order_id=reference, currency_code="USD", source="API",
    )


# -- PostgreSQL ---------------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def pg_url(url: str, schema: str | None = None, application_name: str | None = None) -> str:
    """`url` with its search_path (and application_name) set; asyncpg passes both on as server settings."""
    parts = urlsplit(url)
    replaced = {name for name, value in (("search_path", schema), ("application_name", application_name)) if value}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in replaced]
    query += [(k, v) for k, v in (("search_path", schema), ("application_name", application_name)) if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def pg_schema(url: str, default: str) -> str:
    """The first schema of the URL's search_path, else `default`; a plain lower-case identifier."""
    for key, value in parse_qsl(urlsplit(url).query):
        if key == "search_path" and value.strip():
            default = value.split(",")[0].strip().strip('"')
    if not _IDENTIFIER.fullmatch(default):
        raise ValueError(f"schema name {default!r}: use lower-case letters, digits and _ (at most 63)")
    return default


def check_postgres_argument(parser: argparse.ArgumentParser, url: str | None, default_schema: str) -> None:
    """Refuses (a usage error) a --postgres value that is not a PostgreSQL URL with a usable schema name."""
    if url is None:
        return
    if not url.startswith(("postgresql://", "postgres://")):
        parser.error("--postgres takes a postgresql:// URL")
    try:
        pg_schema(url, default_schema)
    except ValueError as exc:
        parser.error(f"--postgres: {exc}")


def _columns(insert_sql: str) -> list[str]:
    """The column list of an INSERT statement: the COPY columns, in the order of the row tuples."""
    match = re.search(r"\(([^)]*)\)", insert_sql)
    assert match is not None, insert_sql
    return [column.strip() for column in match.group(1).split(",")]


def ensure_postgres(url: str, orders: int, anchor: int, log: Any = print, kind: str = "",
                    layout: LayoutOf = history_layout) -> dict[str, Any]:
    """Metadata (with "url": the schema's URL) of the PostgreSQL copy of the `orders`-order database laid out
    by `layout`, in schema <base>_<kind><orders> (the history databases: no kind)."""
    return asyncio.run(_ensure_postgres(url, orders, anchor, log, kind, layout))


async def _ensure_postgres(url: str, orders: int, anchor: int, log: Any, kind: str,
                           layout: LayoutOf) -> dict[str, Any]:
    import asyncpg

    schema = f"{pg_schema(url, PG_BASE_SCHEMA)}_{kind}{orders}"
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} too long: use a shorter search_path")
    wanted = {"generator": GENERATOR, "pgSchema": PG_SCHEMA, "orders": orders, "anchor": anchor}
    conn = await asyncpg.connect(pg_url(url, schema, "bench-build"))
    try:
        comment = await conn.fetchval(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", schema
        )
        info: dict[str, Any] | None = None
        if comment:
            try:
                info = json.loads(comment)
            except ValueError:
                info = None
        if info is not None and all(info.get(k) == v for k, v in wanted.items()):
            stored = await conn.fetchval(f'SELECT count(*) FROM "{schema}".orders')
            if stored == orders:
                log(f"database: PostgreSQL schema {schema} (cached; {stored:,} orders; built in "
                    f"{info['buildSeconds']:.0f} s)")
                return {**info, "url": pg_url(url, schema), "schema": schema}
            log(f"database: PostgreSQL schema {schema} holds {stored:,} orders, expected {orders:,}: rebuilding")
    finally:
        await conn.close()
    return await build_postgres(url, schema, orders, layout(orders, anchor), wanted, log)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def build_postgres(url: str, schema: str, orders: int, layout: Layout, wanted: dict[str, Any],
                         log: Any = print) -> dict[str, Any]:
    """Drops and creates `schema`, migrates it, fills it with `layout`; its metadata (`wanted` and the
    layout's, the partner's credential, "url" and "schema"), also written as the schema's comment."""
    import asyncpg

    schema_url = pg_url(url, schema)
    log(f"database: building {orders:,} orders into PostgreSQL schema {schema} ...")
    started = time.perf_counter()
    conn = await asyncpg.connect(pg_url(url, schema, "bench-build"))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        credential = await _create_schema_and_partner(schema_url)
        await _pg_load(conn, schema, orders, layout)
        for table in ("resellers", "customers", "orders", "line_items"):
            await conn.execute(f'VACUUM (ANALYZE) "{schema}".{table}')
        info = {**wanted, "customers": len(layout.customers), **layout.meta, **credential,
                "buildSeconds": round(time.perf_counter() - started, 1)}
        # Last: the comment is what marks the schema finished.
        await conn.execute(f'COMMENT ON SCHEMA "{schema}" IS {_literal(json.dumps(info))}')
    finally:
        await conn.close()
    log(f"database: built {orders:,} orders ({len(layout.customers):,} customers) into {schema} in "
        f"{info['buildSeconds']:.1f} s")
    return {**info, "url": schema_url, "schema": schema}


async def _pg_load(conn: Any, schema: str, orders: int, layout: Layout) -> None:
    """Fills the migrated schema in one transaction."""
    order_columns, line_columns = _columns(INSERT_ORDER), _columns(INSERT_LINE)
    bulk_tables = ["orders", "line_items"]
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        # The migration's foreign keys and secondary indexes of the two big tables, to re-create after the load.
        foreign_keys = await conn.fetch(
            """SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
               FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
               WHERE n.nspname = $1 AND t.relname = ANY($2::text[]) AND c.contype = 'f' ORDER BY c.conname""",
            schema, bulk_tables,
        )
        indexes = await conn.fetch(
            """SELECT i.indexname, i.indexdef FROM pg_indexes i
               WHERE i.schemaname = $1 AND i.tablename = ANY($2::text[])
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                                 WHERE n.nspname = i.schemaname AND c.conname = i.indexname)
               ORDER BY i.indexname""",
            schema, bulk_tables,
        )
        for fk in foreign_keys:
            await conn.execute(f'ALTER TABLE {fk["tbl"]} DROP CONSTRAINT "{fk["conname"]}"')
        for index in indexes:
            await conn.execute(f'DROP INDEX "{schema}"."{index["indexname"]}"')

        await conn.copy_records_to_table(
            "resellers", schema_name=schema, columns=["reseller_id", "partner_id", "name"], records=layout.resellers,
        )
        await conn.copy_records_to_table(
            "customers", schema_name=schema, columns=["customer_id", "reseller_id", "company_name", "coterm_date"],
            records=layout.customers,
        )
        order_batch: list[tuple[Any, ...]] = []
        line_batch: list[tuple[Any, ...]] = []
        for order in layout.orders:
            order_batch.append(order_row(order))
            line_batch.extend(line_rows(order))
            if len(order_batch) >= PG_BATCH:
                await conn.copy_records_to_table("orders", schema_name=schema, columns=order_columns,
                                                 records=order_batch)
                await conn.copy_records_to_table("line_items", schema_name=schema, columns=line_columns,
                                                 records=line_batch)
                order_batch, line_batch = [], []
        if order_batch:
            await conn.copy_records_to_table("orders", schema_name=schema, columns=order_columns, records=order_batch)
            await conn.copy_records_to_table("line_items", schema_name=schema, columns=line_columns,
                                             records=line_batch)
        for index in indexes:
            await conn.execute(index["indexdef"])
        for fk in foreign_keys:
            await conn.execute(f'ALTER TABLE {fk["tbl"]} ADD CONSTRAINT "{fk["conname"]}" {fk["def"]}')
        stored = await conn.fetchval(f'SELECT count(*) FROM "{schema}".orders')
        if stored != orders:
            raise RuntimeError(f"built {stored} orders in {schema}, expected {orders}")
