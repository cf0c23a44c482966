"""The settings every example needs to reach the gateway: flags, or environment variables for what should
not sit in a shell's history."""
from __future__ import annotations

import argparse
import os

from partner_orders_client import Client


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    environ = os.environ
    parser.add_argument("--base-url", default=environ.get("GATEWAY_URL", "http://127.0.0.1:8080"),
                        help="the gateway's base URL (env GATEWAY_URL)")
    parser.add_argument("--api-key", default=environ.get("GATEWAY_API_KEY"),
                        help="the partner's API key (env GATEWAY_API_KEY)")
    parser.add_argument("--client-secret", default=environ.get("GATEWAY_CLIENT_SECRET"),
                        help="its client secret (env GATEWAY_CLIENT_SECRET; prefer it to the flag)")


def connect(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Client:
    if not args.api_key or not args.client_secret:
        parser.error("an API key and a client secret are needed (--api-key/--client-secret or the env variables)")
    return Client(args.base_url, args.api_key, args.client_secret)
