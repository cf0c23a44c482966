"""Exports a customer's order history to CSV, one row per order line, newest order first.

    python export_history_csv.py CUSTOMER_ID [--status 1000 ...] [--start-date 2025-01-01] [--output FILE]

The client follows the history's pages itself; the export reads every page the gateway has for the filters.
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from connection import add_connection_arguments, connect

from partner_orders_client import ClientError, HistoryFilters, Order

COLUMNS = ["orderId", "creationDate", "orderType", "status", "externalReferenceId", "referenceOrderId",
           "extLineItemNumber", "offerId", "quantity", "subscriptionId", "lineStatus", "currencyCode"]


def rows(orders: Iterable[Order]) -> Iterator[dict[str, Any]]:
    for order in orders:
        for line in order.get("lineItems", []):
            yield {
                **{name: order.get(name, "") for name in COLUMNS[:6]},
                **{name: line.get(name, "") for name in ("extLineItemNumber", "offerId", "quantity", "subscriptionId")},
                "lineStatus": line.get("status", ""),
                "currencyCode": line.get("currencyCode") or order.get("currencyCode", ""),
            }


def export(orders: Iterable[Order], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows(orders):
        writer.writerow(row)
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("customer_id")
    parser.add_argument("--status", action="append", help="a status code to include (repeatable)")
    parser.add_argument("--order-type", action="append", help="NEW, RENEWAL, RETURN or TRANSFER (repeatable)")
    parser.add_argument("--start-date", help="YYYY-MM-DD (default: the start of the customer's current term)")
    parser.add_argument("--end-date", help="YYYY-MM-DD (default: now)")
    parser.add_argument("--output", help="the CSV file to write (default: standard output)")
    args = parser.parse_args()
    filters: HistoryFilters = {"limit": 100}  # the largest page the gateway gives: fewest requests
    for name in ("status", "order_type", "start_date", "end_date"):
        if getattr(args, name):
            filters[name] = getattr(args, name)
    with connect(parser, args) as gateway:
        out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
        try:
            lines = export(gateway.history(args.customer_id, **filters), out)
        except ClientError as error:
            print(f"export failed: {error}", file=sys.stderr)
            return 1
        finally:
            if args.output:
                out.close()
    print(f"{lines} order lines exported", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
