"""A small demo data set: one partner, two resellers, three customers, a year of orders."""
from __future__ import annotations

import time
from datetime import date, timedelta

from gateway.credentials import IssuedCredential
from gateway.order_model import LineItem, Order, Promotion
from gateway.partners import create_credential, create_partner
from gateway.storage import Customer, ImportRecord, Reseller, Storage

DEMO_PARTNER = "demo-partner"
DEMO_CUSTOMER = "9876543210"
DAY = 86400


class DemoRefused(Exception):
    """`serve --demo` on a database that holds data of its own: a working demo credential has no place there."""


def demo_records(now: int) -> list[ImportRecord]:
    coterm = (date.fromtimestamp(now) + timedelta(days=180)).isoformat()
    records: list[ImportRecord] = [
        Reseller("demo-reseller-1", DEMO_PARTNER, "Northwind Resale"),
        Reseller("demo-reseller-2", DEMO_PARTNER, "Contoso Licensing"),
        Customer(DEMO_CUSTOMER, "demo-reseller-1", "Acme Design Studio", coterm),
        Customer("1234567001", "demo-reseller-1", "Globex Print", None),
        Customer("1234567002", "demo-reseller-2", "Initech Media", coterm),
    ]
    records += [_demo_order(n, now) for n in range(36)]
    return records


def _demo_order(n: int, now: int) -> Order:
    """The n-th demo order: customers, statuses, types, offers and promotions in rotation."""
    offers = ("80004567CA01A12", "80004561CA02A12", "65304479CA01A12")
    status = ("1000", "1002", "1000", "1004")[n % 4]
    lines = tuple(
        LineItem(
            ext_line_item_number=i + 1,
            offer_id=offers[(n + i) % 3],
            quantity=1 + (n + i) % 5,
            subscription_id=f"{86756300 + n * 3 + i}" if status == "1000" else "",
            status=status,
            currency_code="USD",
            deployment_id="12345" if i == 1 else None,
            promotions=(Promotion("SUMMER_SALE_123", "SUCCESS"),) if n % 5 == 0 else None,
        )
        for i in range(1 + n % 2)
    )
    return Order(
        order_id=str(5120008000 + n),
        customer_id=(DEMO_CUSTOMER, "1234567001", "1234567002")[n % 3],
        reseller_id="",
        order_type=("NEW", "RENEWAL", "NEW", "TRANSFER")[n % 4],
        status=status,
        created=now - (n * 9 + 1) * DAY,
        line_items=lines,
        external_reference_id=f"PO-{700 + n}",
        currency_code="USD",
    )


async def refuse_unless_empty(storage: Storage) -> None:
    """DemoRefused when the database holds partners, unless it holds the demo's (loaded by an earlier start)."""
    if not await storage.partner_exists(DEMO_PARTNER) and await storage.list_partners():
        raise DemoRefused("--demo loads its data only into an empty database, and this one holds partners: "
                          "start without --demo, or point --database at a new one")


async def load_demo(storage: Storage) -> tuple[IssuedCredential, bool]:
    """Loads the data set once (True when it did, now) and leaves exactly one working demo credential, a
    fresh one (a secret is kept only as a hash, so the last start's cannot be shown again): the ones of
    earlier starts are revoked, so credentials do not pile up however often the demo starts."""
    if not await storage.partner_exists(DEMO_PARTNER):
        await refuse_unless_empty(storage)
        credential = await create_partner(storage, "Demo Distribution", DEMO_PARTNER)
        await storage.import_records(enumerate(demo_records(int(time.time())), start=1))
        return credential, True
    await storage.revoke_partner_credentials(DEMO_PARTNER)
    return await create_credential(storage, DEMO_PARTNER), False
