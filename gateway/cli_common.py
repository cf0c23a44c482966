"""What every `order-gateway` command shares: its signature, its exit codes and how it prints."""
from __future__ import annotations

import argparse
import sys
import threading
from types import FrameType
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.settings import Settings
from gateway.storage import Storage

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # the shells' 128 + SIGINT

# Set by Ctrl-C. A long write (an import) checks it as it goes, also on the thread a backend runs units on,
# and fails, so that its transaction rolls back rather than commit after the interrupt.
INTERRUPTED = threading.Event()


class Interrupted(Exception):
    """Raised inside a write that saw INTERRUPTED: its transaction rolls back."""


class PortInUse(OSError):
    """The address to listen on is taken (by another gateway, say); the message names it."""


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT for the commands other than `serve`: noted for the writes in progress, then the usual
    KeyboardInterrupt, which asyncio.run turns into cancelling the command."""
    INTERRUPTED.set()
    raise KeyboardInterrupt

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
