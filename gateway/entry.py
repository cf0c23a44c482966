"""The process entry point (`order-gateway`, `python run.py`). Ctrl-C while the command line is still loading
is one line too, not a traceback: nothing has been done by then. (gateway.cli then takes SIGINT over.)"""
from __future__ import annotations

import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 1  # as gateway.cli_common's: the command failed, and one line says why


def _while_loading(signum: int, frame: FrameType | None) -> None:
    """Nothing is open yet: leave at once. (Unwinding an import cut short, then finalizing the interpreter,
    can crash in an extension module initialized halfway.)"""
    sys.stderr.write("order-gateway: interrupted; nothing was done\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


signal.signal(signal.SIGINT, _while_loading)


def main() -> int:
    from gateway.cli import main as run_command

    status = run_command()
    # Done: a SIGINT from here on would only kill the interpreter while it shuts down (which resets the
    # handlers), with no word of why; held pending, it is dropped with the process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return status
