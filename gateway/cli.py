"""The `order-gateway` command line: serve the API and operate its data."""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import signal
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from tqdm import tqdm

from gateway.cli_common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, INTERRUPTED, Command, Interrupted
from gateway.cli_common import CannotListen, OutputLost, PortInUse, defer_interrupt, fail, print_json, print_line
from gateway.cli_common import printable, undecodable_argument, whole_number
from gateway.cli_webhooks import WEBHOOK_COMMANDS, add_webhook_commands
from gateway.demo import DemoRefused
from gateway.importer import ImportLineError, ImportUnreadable, import_file
from gateway.logconfig import configure_logging
from gateway.partners import create_credential, create_partner, credential_line, partner_line, revoke_credential
from gateway.rate_limit import Limit, change_limit
from gateway.version import VERSION
from gateway.settings import DEFAULT_DATABASE_URL, ENV_PREFIX, MAX_BURST, MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND
from gateway.settings import Settings, SettingsError, redacted
from gateway.settings_help import SETTING_HELP
from gateway.storage import RateOverride, Storage, StorageError, StorageUnavailable, open_storage
from gateway.storage.sqlite import database_path
from schemas.enums import STATUSES

MAX_WORKERS = 64  # `serve --workers`: more processes than any host has cores, and far fewer than fork would allow


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One clear line, not the usage block: operators read these in service logs."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="order-gateway", description="Partner Orders Gateway: serve the API, operate its data.",
                     epilog="Exit status: 0 done, 1 failed or interrupted (one line on stderr says why), "
                            "2 usage error.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument("--database", metavar="URL", help=f"database URL (env {ENV_PREFIX}DATABASE_URL; "
                                                          f"default {DEFAULT_DATABASE_URL})")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _add_serve_command(commands.add_parser("serve", help="run the API"))
    _add_partner_commands(commands.add_parser("partners", help="manage partners and their rate limits"))
    credentials = commands.add_parser("credentials", help="manage API credentials")
    actions = credentials.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new credential for a partner (prints its key and secret once)")
    create.add_argument("partner_id", metavar="PARTNER_ID", help="the partner it belongs to")
    revoke = actions.add_parser("revoke", help="revoke a credential (running servers refuse it within seconds)")
    revoke.add_argument("api_key", metavar="API_KEY", help="the credential's API key")
    listing = actions.add_parser("list", help="a partner's credentials, by fingerprint, never the key")
    listing.add_argument("partner_id", metavar="PARTNER_ID", help="the partner")

    load = commands.add_parser("import", help="load resellers, customers and orders from JSON Lines, all or nothing")
    load.add_argument("file", metavar="FILE.jsonl", help="one record per line: reseller, customer or order")
    load.add_argument("--no-events", dest="events", action="store_false",
                      help="write no order events (for history that partners have already seen)")

    add_webhook_commands(commands.add_parser("webhooks", help="manage partners' webhooks"))

    orders = commands.add_parser("orders", help="operate on orders").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    status = orders.add_parser("set-status", help="move an order to another status (writes its event)")
    status.add_argument("order_id", metavar="ORDER_ID", help="the order")
    status.add_argument("status", choices=STATUSES, metavar="STATUS", help=f"one of {', '.join(STATUSES)}")
    return parser


def _add_serve_command(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--demo", action="store_true",
                       help="load the demo data once, leave one working demo credential, print a curl that works")
    serve.add_argument("--workers", type=whole_number(MAX_WORKERS), default=1, metavar="N",
                       help=f"processes serving one port (default 1, at most {MAX_WORKERS}); SIGTERM stops all")
    # Every setting but the database (a global option) has a flag; Settings checks the values.
    for field in Settings.fields():
        if field.name != "database_url":
            flag = "--" + field.name.replace("_", "-")
            serve.add_argument(flag, dest=field.name, metavar="VALUE",
                               help=f"{SETTING_HELP[field.name]} (default {field.default!r}; "
                                    f"env {ENV_PREFIX}{field.name.upper()})")


_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # float() takes " 5" and "1_0" too


def _positive_rate(text: str) -> float:
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not MIN_RATE_PER_SECOND <= value <= MAX_RATE_PER_SECOND:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number from {MIN_RATE_PER_SECOND} to {MAX_RATE_PER_SECOND:,.0f}")
    return value


def _add_partner_commands(parser: argparse.ArgumentParser) -> None:
    partners = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = partners.add_parser("create", help="create a partner and its first credential (printed once)")
    create.add_argument("--name", required=True, type=printable("a name"), help="the partner's name")
    create.add_argument("--partner-id", metavar="ID", type=printable("an id"),
                        help="its id (default: a new random one)")
    partners.add_parser("list", help="every partner, with its rate limit and number of active credentials")
    rate = partners.add_parser("set-rate-limit", help="a partner's own rate limit, or back to the default")
    rate.add_argument("partner_id", metavar="PARTNER_ID", help="the partner")
    chosen = rate.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--per-second", type=_positive_rate, metavar="R",
                        help=f"requests per second ({MIN_RATE_PER_SECOND} to {MAX_RATE_PER_SECOND:,.0f})")
    chosen.add_argument("--default", action="store_true", help="use the configured defaults again")
    rate.add_argument("--burst", type=whole_number(MAX_BURST), metavar="B",
                      help=f"requests at once (1 to {MAX_BURST:,})")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    signal.signal(signal.SIGINT, defer_interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    undecodable = undecodable_argument(args, paths={"file"})
    if undecodable is not None:
        parser.error(f"argument {undecodable}: not UTF-8 text")
    if args.command == "partners" and args.action == "set-rate-limit" and (args.burst is None) != args.default:
        parser.error("partners set-rate-limit: give --per-second with --burst, or --default alone")
    env = os.environ if environ is None else environ
    try:
        flags = {field.name: getattr(args, field.name, None) for field in Settings.fields()}
        settings = Settings.from_env(env, **{**flags, "database_url": args.database})
    except SettingsError as exc:
        return fail(str(exc), EXIT_USAGE)
    configure_logging(settings.log_format)
    status = _run(args, settings)
    if INTERRUPTED.is_set() and status == 0:
        print("order-gateway: interrupted after the command had completed; what it printed stands", file=sys.stderr)
    return status


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """The command, and the one line (and exit status) of each way it can fail."""
    try:
        if args.command == "serve":
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the server stops on it (SIGTERM too)
            from gateway.cli_serve import serve  # the web stack, loaded only by the command that runs it

            return serve(settings, demo=args.demo, workers=args.workers)
        name = (args.command, getattr(args, "action", None))
        unreadable = _unreadable_input(args.file) if name == ("import", None) else None
        if unreadable:  # said before a database is made for it
            return fail(f"cannot read {args.file}: {unreadable}")
        missing = _missing_database(settings.database_url)
        if missing and name not in _CREATE_THE_DATABASE:
            return fail(f"no database at {missing} (serve, partners create or import creates one)")
        return asyncio.run(_with_storage(settings, _COMMANDS[name], args))
    except (KeyboardInterrupt, Interrupted):
        return fail("interrupted; nothing was written (a command's writes are one transaction)", EXIT_INTERRUPTED)
    except OutputLost as lost:
        return fail(f"the command was carried out, but its output could not be written: {lost}")
    except PortInUse as exc:
        return fail(f"cannot listen: {exc.strerror}; choose another port with --port (or {ENV_PREFIX}PORT, "
                    "or make run PORT=...)")
    except CannotListen as exc:
        return fail(f"cannot listen on {exc.strerror}; choose another address with --host (or {ENV_PREFIX}HOST)")
    except (StorageError, ImportLineError, DemoRefused) as exc:
        return fail(str(exc))
    except ImportUnreadable as exc:
        return fail(f"cannot read {args.file}: {exc}; nothing was written")
    except StorageUnavailable as exc:
        return fail(f"the database is busy or unavailable, nothing was written; try again ({exc})")
    except (OSError, sqlite3.Error, ValueError) as exc:
        # The database (or the address) cannot be used: say which, in one line.
        # A server that takes the connection and never answers: a timeout, whose text is empty.
        why = "no answer within the busy timeout" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        return fail(f"cannot start with {redacted(settings.database_url)}: {why}")


# The commands that may start on a database that does not exist yet (serve too). Any other would create an
# empty one where a mistyped --database points, and answer from it: nothing to list, no such partner.
_CREATE_THE_DATABASE = frozenset({("partners", "create"), ("import", None)})


def _unreadable_input(path: str) -> str | None:
    """Why an import's file cannot be read, when that is plain without opening it (a pipe is read:
    `import <(zcat dump.gz)`, and opening it twice would lose what it holds)."""
    if not os.path.exists(path):
        return "no such file"
    return "a directory" if os.path.isdir(path) else None


def _missing_database(url: str) -> str | None:
    """The path of a SQLite database URL whose file does not exist."""
    if not url.startswith("sqlite://"):
        return None
    path = database_path(url)
    return None if os.path.exists(path) else path


async def _with_storage(settings: Settings, command: Command, args: argparse.Namespace) -> int:
    async with open_storage(
        settings.database_url, settings.db_pool_min_size, settings.db_pool_max_size, settings.db_busy_timeout_seconds
    ) as storage:
        return await command(storage, args, settings)


async def _partners_create(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    print_json((await create_partner(storage, args.name, args.partner_id)).as_json())
    return 0


async def _credentials_create(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    print_json((await create_credential(storage, args.partner_id)).as_json())
    return 0


async def _credentials_revoke(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    if not await revoke_credential(storage, args.api_key):
        print("order-gateway: no credential with that API key", file=sys.stderr)
        return EXIT_FAILED
    print("revoked", file=sys.stderr)
    return 0


async def _import(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    try:
        handle = open(args.file, "rb")
    except OSError as exc:
        print(f"order-gateway: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    with handle, tqdm(
        total=os.fstat(handle.fileno()).st_size, unit="B", unit_scale=True, desc="import",
        disable=not sys.stderr.isatty(), ncols=shutil.get_terminal_size().columns,  # 80 where the tty has no size
    ) as bar:

        def on_line(size: int) -> None:
            if INTERRUPTED.is_set():
                raise Interrupted("import interrupted")
            bar.update(size)

        counts = await import_file(storage, handle, on_line, events=args.events)
    print_json({"written": counts.written, "unchanged": counts.unchanged})
    return 0


async def _set_status(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    order = await storage.set_order_status(args.order_id, args.status)
    if order is None:
        print(f"order-gateway: no order {args.order_id!r}", file=sys.stderr)
        return EXIT_FAILED
    print_line(order.render().decode())
    return 0


async def _partners_list(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    for partner in await storage.list_partners():
        print_json(partner_line(partner, settings))
    return 0


async def _set_rate_limit(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    default = Limit(settings.rate_limit_per_second, settings.rate_limit_burst)
    await change_limit(storage, args.partner_id, RateOverride(args.per_second, args.burst), default)
    for partner in await storage.list_partners():
        if partner.partner_id == args.partner_id:
            print_json(partner_line(partner, settings))
    return 0


async def _credentials_list(storage: Storage, args: argparse.Namespace, settings: Settings) -> int:
    for credential in await storage.list_credentials(args.partner_id):
        print_json(credential_line(credential))
    return 0


_COMMANDS: dict[tuple[str, str | None], Command] = {
    ("partners", "create"): _partners_create,
    ("partners", "list"): _partners_list,
    ("partners", "set-rate-limit"): _set_rate_limit,
    ("credentials", "list"): _credentials_list,
    ("credentials", "create"): _credentials_create,
    ("credentials", "revoke"): _credentials_revoke,
    ("import", None): _import,
    ("orders", "set-status"): _set_status,
    **WEBHOOK_COMMANDS,
}
