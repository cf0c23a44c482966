"""What every `order-gateway` command shares: its signature, its exit codes and how it prints."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.settings import Settings
from gateway.storage import Storage

EXIT_USAGE = 2
EXIT_FAILED = 1

Command = Callable[[Storage, argparse.Namespace, Settings], Awaitable[int]]


def print_json(value: Any) -> None:
    """One JSON object on one line of stdout, flushed: what scripts read."""
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def fail(message: str) -> int:
    """One line on stderr saying why; the exit status of a failed command."""
    print(f"order-gateway: {message}", file=sys.stderr)
    return EXIT_FAILED


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)
