"""Benchmark databases for bench/history.py, built with the gateway's own schema and order rendering.

The schema comes from opening the file through gateway.storage.open_storage (which migrates it), the
partner and its credential from gateway.partners.create_partner; resellers, customers, orders and line items
are then bulk-inserted with the standard library's sqlite3, each row built by gateway.storage.sqlite's
order_row/line_rows from a gateway.orders.Order, so every stored body is exactly what the gateway serves.

Everything is generated from fixed seeds. The hot customer's 10,000 orders are the same in every database
(same ids, same bodies) given the same anchor time, which the second database built takes from the first
one's metadata. A finished database is cached as bench/data/history-<orders>-g<GENERATOR>-s<schema>.db
(schema: the gateway's migration count) beside a .json of its metadata, including the partner's API key and
client secret. A build goes to a temporary name first, so an interrupted build is never mistaken for a
finished one, and replaces the caches of the same size made by another generator or schema.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.orders import LineItem, Order, Promotion
from gateway.partners import create_partner
from gateway.storage import open_storage
from gateway.storage.sql import INSERT_LINE, line_rows, order_row
from gateway.storage.sqlite import MIGRATIONS

GENERATOR = 1  # bump when the generated data changes: old caches are then ignored
SCHEMA = len(MIGRATIONS)  # a new migration means a rebuild, so the data is always laid out as a fresh install
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


def paths(orders: int) -> tuple[Path, Path]:
    stem = f"history-{orders}-g{GENERATOR}-s{SCHEMA}"
    return DATA_DIR / f"{stem}.db", DATA_DIR / f"{stem}.json"


def cached(orders: int) -> dict[str, Any] | None:
    db, meta = paths(orders)
    if not (db.exists() and meta.exists()):
        return None
    info = json.loads(meta.read_text())
    wanted = {"generator": GENERATOR, "schema": SCHEMA, "orders": orders}
    return info if all(info.get(k) == v for k, v in wanted.items()) else None


def _anchor_from_siblings() -> int | None:
    for meta in sorted(DATA_DIR.glob(f"history-*-g{GENERATOR}-s{SCHEMA}.json")):
        try:
            return int(json.loads(meta.read_text())["anchor"])
        except (ValueError, KeyError, OSError):
            continue
    return None


def ensure(orders: int, log: Any = print) -> dict[str, Any]:
    """Metadata of the cached database of `orders` orders, built first when missing."""
    info = cached(orders)
    if info is not None:
        log(f"database: {paths(orders)[0]} (cached; built in {info['buildSeconds']:.0f} s)")
        return info
    for stale in DATA_DIR.glob(f"history-{orders}-g*"):
        stale.unlink()
    anchor = _anchor_from_siblings() or (int(time.time()) // 86400) * 86400
    log(f"database: building {orders:,} orders into {paths(orders)[0]} ...")
    started = time.perf_counter()
    info = build(orders, anchor)
    info["buildSeconds"] = round(time.perf_counter() - started, 1)
    paths(orders)[1].write_text(json.dumps(info, indent=1) + "\n")
    log(f"database: built {orders:,} orders ({info['customers']:,} customers) in {info['buildSeconds']:.1f} s")
    return info


def build(orders: int, anchor: int) -> dict[str, Any]:
    if orders < HOT_ORDERS:
        raise ValueError(f"a database needs at least {HOT_ORDERS} orders (the hot customer's)")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    final, _ = paths(orders)
    tmp = final.with_name(final.name + ".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), final, Path(f"{final}-wal"), Path(f"{final}-shm")):
        leftover.unlink(missing_ok=True)
    credential = asyncio.run(_create_schema_and_partner(f"sqlite:///{tmp}"))

    others = orders - HOT_ORDERS
    customer_count = others // ORDERS_PER_CUSTOMER if others else 0
    counts = _split(others, customer_count, random.Random(1))
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        # Bulk load: no journal, no fsync; the file goes back to WAL (the gateway's mode) at the end.
        db.execute("PRAGMA journal_mode = DELETE")
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -1000000", "temp_store = MEMORY"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO resellers (reseller_id, partner_id, name) VALUES (?, ?, ?)",
            [(HOT_RESELLER, PARTNER_ID, "Hot Reseller")]
            + [(_reseller_id(n), PARTNER_ID, f"Reseller {n}") for n in range(RESELLERS)],
        )
        rng = random.Random(2)
        customers: list[tuple[str, str, str, str | None]] = [(HOT_CUSTOMER, HOT_RESELLER, "Hot Customer Inc.", None)]
        customers += [
            (_customer_id(n), _reseller_id(rng.randrange(RESELLERS)), f"Customer {n}",
             _coterm(rng, anchor) if rng.random() < 0.5 else None)
            for n in range(customer_count)
        ]
        db.executemany(
            "INSERT INTO customers (customer_id, reseller_id, company_name, coterm_date) VALUES (?, ?, ?, ?)",
            customers,
        )
        order_batch: list[tuple[Any, ...]] = []
        line_batch: list[tuple[Any, ...]] = []
        for order in _all_orders(anchor, customers[1:], counts):
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
        "customers": len(customers),
        "anchor": anchor,
        "hotCustomer": HOT_CUSTOMER,
        "hotOrders": HOT_ORDERS,
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
