"""Places an order so that running this again (after a timeout, a crash, a lost answer) never places it twice.

    python place_order_safely.py CUSTOMER_ID PURCHASE_ORDER OFFER_ID [--quantity N] [--currency USD]

The purchase order number is the integration's own record of what it means to buy. The order's correlation
id is derived from it, the customer *and the order's content*: every retry of the client, and every rerun of
this script with the same arguments, sends the same id, and the gateway executes it once and replays its
answer to the others. (An id derived from the body alone would collide for two customers buying the same
thing; a random one would not be replayed.) The content is part of the id because the gateway also keeps
the answer to a request it refused for the request's own fault (a quantity of 0, say) and replays it: with
an id of the purchase order alone, the corrected order would be answered 422 4123 for 10 days.
The gateway keeps answers for 10 days; after that a rerun would find the order by its external reference
first, which is why the script looks there before placing. Change an order's content only once the earlier
run's answer is known (rerun it unchanged first): the two would be two requests, and both could be placed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from connection import add_connection_arguments, connect

from partner_orders_client import ApiError, Client, ClientError, Order


def correlation_id(customer_id: str, purchase_order: str, order: dict[str, Any]) -> str:
    content = hashlib.sha256(json.dumps(order, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"place-order:{customer_id}:{purchase_order}:{content[:16]}"


def place_once(gateway: Client, customer_id: str, purchase_order: str, line: dict[str, object],
               currency: str) -> tuple[Order, bool]:
    """The order placed for this purchase order, and whether this run placed it."""
    for existing in gateway.history(customer_id, external_reference_id=purchase_order, start_date="2000-01-01"):
        return existing, False
    order = {"orderType": "NEW", "externalReferenceId": purchase_order, "currencyCode": currency,
             "lineItems": [line]}
    placed = gateway.place_order(customer_id, order, correlation_id=correlation_id(customer_id, purchase_order, order))
    return placed, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument("customer_id")
    parser.add_argument("purchase_order", help="your own order number (at most 35 characters); one order per number")
    parser.add_argument("offer_id")
    parser.add_argument("--quantity", type=int, default=1)
    parser.add_argument("--currency", default="USD")
    args = parser.parse_args()
    line: dict[str, object] = {"extLineItemNumber": 1, "offerId": args.offer_id, "quantity": args.quantity}
    with connect(parser, args) as gateway:
        try:
            order, placed = place_once(gateway, args.customer_id, args.purchase_order, line, args.currency)
        except ApiError as error:
            print(f"refused: {error} {error.additional_details} (request {error.request_id})", file=sys.stderr)
            return 1
        except ClientError as error:
            print(f"not known whether it was placed; run again to find out: {error}", file=sys.stderr)
            return 1
    print(json.dumps({"placed": placed, "order": order}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
