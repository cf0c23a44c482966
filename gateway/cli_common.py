"""What every `order-gateway` command shares: its signature, its exit codes and how it prints."""
from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Collection
from types import FrameType
from typing import Any

import orjson

from gateway.settings import Settings
from gateway.storage import Storage
from schemas.imports import MAX_ID, is_id

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = EXIT_FAILED  # the command did not do its work: one line says it was interrupted

Command = Callable[[Storage, argparse.Namespace, Settings], Awaitable[int]]

# Set by Ctrl-C. A command is not cut off where it stands (after its commit and before it printed what it
# made, say, a secret would be lost): it runs to its end, except that a long write (an import) checks this as
# it goes, also on the thread a backend runs units on, and fails, so that its transaction rolls back.
INTERRUPTED = threading.Event()


class Interrupted(Exception):
    """Raised inside a write that saw INTERRUPTED: its transaction rolls back."""


class CannotListen(OSError):
    """The address cannot be listened on (not one of this host's, or no such host); the message names it."""


class PortInUse(CannotListen):
    """The address to listen on is taken (by another gateway, say); the message names it."""


def listen_failure(failure: OSError, host: str, port: int) -> CannotListen:
    """What a failed bind of host:port says: the port taken, or the address not one this host can listen on."""
    if failure.errno == errno.EADDRINUSE:
        return PortInUse(failure.errno, f"{host}:{port} is in use")
    return CannotListen(failure.errno, f"{host}:{port}: {failure.strerror or failure}")


def defer_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT for the commands other than `serve`: noted, for the write in progress to see."""
    INTERRUPTED.set()


class OutputLost(Exception):
    """The command's output could not be written: stdout is closed (`>&-`), a pipe whose reader went away, a
    full disk. The message says which."""


def print_json(value: Any) -> None:
    """One JSON object on one line of stdout, flushed: what scripts read."""
    print_line(orjson.dumps(value).decode())


def print_line(text: str) -> None:
    if sys.stdout is None:
        raise OutputLost("stdout is closed")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError as failure:
        # What is left unflushed would fail again at exit, with a traceback: it goes nowhere instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise OutputLost(failure.strerror or type(failure).__name__) from None


def fail(message: str, status: int = EXIT_FAILED) -> int:
    """One line on stderr saying why; the exit status of a failed command."""
    print(f"order-gateway: {message}", file=sys.stderr)
    return status


def whole_number(maximum: int) -> Callable[[str], int]:
    """An argument type: a whole number from 1 to `maximum` (a bigger one would overflow the database's
    integers, or, as a count of processes, the machine)."""

    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {maximum:,}")
        return int(text)

    return parse


def printable(what: str) -> Callable[[str], str]:
    """An argument type: an id, or a name, as the import takes ids (schemas.imports.is_id): it is
    listed, logged and sent back in paths and headers."""

    def parse(text: str) -> str:
        if len(text) > MAX_ID or not is_id(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}: 1 to {MAX_ID} characters, no control (or "
                                             "invisible) characters, no white space at either end")
        return text

    return parse


def undecodable_argument(args: argparse.Namespace, paths: Collection[str]) -> str | None:
    """The first argument that is not UTF-8 text (Python keeps such bytes as lone surrogates, which no
    database takes: PostgreSQL's driver failed with a traceback), by its name; `paths` name the file paths,
    which the system takes as any bytes."""
    for name, value in vars(args).items():
        if name in paths:
            continue
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode()
                except UnicodeEncodeError:
                    return name
    return None
