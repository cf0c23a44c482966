"""Receives the gateway's webhook deliveries: verifies each, handles each event once, acknowledges.

    WEBHOOK_SECRET=whsec_... python webhook_receiver.py [--host 127.0.0.1] [--port 8000] [--path /webhooks]

A delivery that fails verification is answered 400 and not handled. A delivery may come more than once (a
timeout, a crash on either side): each carries its event's id as `webhook-id`, and one already handled is
acknowledged again without being handled again. This example remembers the ids in memory, the most recent
100,000; a real receiver records them in the same transaction as the work the event causes.
Handling here is printing one JSON line per event on standard output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict
from datetime import timedelta

from aiohttp import web

from partner_orders_client import WebhookVerificationError, verify_webhook

REMEMBERED_IDS = 100_000  # bounded: a receiver runs for months


class Receiver:
    def __init__(self, secret: str, tolerance: timedelta) -> None:
        self._secret = secret
        self._tolerance = tolerance
        self._handled: OrderedDict[str, None] = OrderedDict()

    async def deliver(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify_webhook(self._secret, request.headers, body, tolerance=self._tolerance)
        except WebhookVerificationError as error:
            return web.json_response({"error": str(error)}, status=400)
        delivery_id = request.headers["webhook-id"]
        if delivery_id in self._handled:
            return web.json_response({"status": "duplicate"})
        handle(event)
        self._handled[delivery_id] = None
        if len(self._handled) > REMEMBERED_IDS:
            self._handled.popitem(last=False)
        return web.json_response({"status": "handled"})


def handle(event: dict[str, object]) -> None:
    fields = {name: event.get(name) for name in ("eventId", "type", "orderId", "customerId", "status")}
    print(json.dumps(fields), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", default="/webhooks")
    parser.add_argument("--tolerance-seconds", type=int, default=300,
                        help="how far a delivery's timestamp may be from this host's clock")
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        parser.error("set WEBHOOK_SECRET to the secret `order-gateway webhooks add` printed")
    receiver = Receiver(secret, timedelta(seconds=args.tolerance_seconds))
    app = web.Application()
    app.router.add_post(args.path, receiver.deliver)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
