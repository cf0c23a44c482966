"""`order-gateway webhooks add|list|remove|deliveries`: the operator registers partners' webhooks."""
from __future__ import annotations

import argparse

from gateway.cli_common import Command, fail, print_json, whole_number
from gateway.settings import Settings
from gateway.storage import Storage
from gateway.webhook_guard import TargetRefused
from gateway.webhooks import add_webhook, attempt_line, webhook_line
from schemas.enums import EVENT_TYPES

DEFAULT_ATTEMPTS_SHOWN = 20
MAX_ATTEMPTS_SHOWN = 100_000


def add_webhook_commands(parser: argparse.ArgumentParser) -> None:
    webhooks = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = webhooks.add_parser("add", help="register a webhook; prints its secret, the only time it is shown")
    add.add_argument("partner_id", metavar="PARTNER_ID", help="the partner whose events it receives")
    add.add_argument("url", metavar="URL", help="where events are POSTed (https://)")
    add.add_argument("--type", dest="types", action="append", choices=EVENT_TYPES, default=[], metavar="TYPE",
                     help=f"an event type to receive (repeatable; all types when none): {', '.join(EVENT_TYPES)}")
    listing = webhooks.add_parser("list", help="the webhooks, one JSON object per line, without secrets")
    listing.add_argument("partner_id", nargs="?", metavar="PARTNER_ID", help="only this partner's")
    remove = webhooks.add_parser("remove", help="delete a webhook and the deliveries it still had to make")
    remove.add_argument("webhook_id", metavar="WEBHOOK_ID", help="the webhook (as `webhooks list` shows it)")
    deliveries = webhooks.add_parser("deliveries", help="a webhook's latest delivery attempts, newest first")
    deliveries.add_argument("webhook_id", metavar="WEBHOOK_ID", help="the webhook")
    deliveries.add_argument("--limit", type=whole_number(MAX_ATTEMPTS_SHOWN), default=DEFAULT_ATTEMPTS_SHOWN,
                            metavar="N", help=f"how many attempts (default {DEFAULT_ATTEMPTS_SHOWN}, "
                                              f"at most {MAX_ATTEMPTS_SHOWN:,})")


async def _add(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    try:
        added = await add_webhook(storage, settings, args.partner_id, args.url, args.types)
    except TargetRefused as refused:
        return fail(f"cannot add {args.url!r}: {refused}")
    print_json(added)
    return 0


async def _list(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    for webhook in await storage.list_webhooks(args.partner_id):
        print_json(webhook_line(webhook))
    return 0


async def _remove(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    if not await storage.remove_webhook(args.webhook_id):
        return fail(f"no webhook {args.webhook_id!r}")
    print_json({"webhookId": args.webhook_id, "removed": True})
    return 0


async def _deliveries(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    if await storage.get_webhook(args.webhook_id) is None:
        return fail(f"no webhook {args.webhook_id!r}")
    for attempt in await storage.latest_attempts(args.webhook_id, args.limit):
        print_json(attempt_line(attempt))
    return 0


WEBHOOK_COMMANDS: dict[tuple[str, str | None], Command] = {
    ("webhooks", "add"): _add,
    ("webhooks", "list"): _list,
    ("webhooks", "remove"): _remove,
    ("webhooks", "deliveries"): _deliveries,
}
