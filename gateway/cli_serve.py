"""`order-gateway serve`: the API, in one process or in `--workers N` on one port, and with `--demo` the demo
data and a curl that works, printed once the port is bound."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import multiprocessing.connection
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType

import orjson
import structlog
from aiohttp import web

from gateway.app import create_app, signing_key, token_service
from gateway.demo import DEMO_CUSTOMER, load_demo, refuse_unless_empty
from gateway.cli_common import PortInUse, listen_failure
from gateway.http_server import serve_app
from gateway.keys import SETTINGS, STORAGE
from gateway.logconfig import configure_logging
from gateway.metrics import MULTIPROCESS_DIR
from gateway.settings import Settings, redacted
from gateway.storage import open_storage

log = structlog.get_logger("gateway.server")
ORPHAN_CHECK_SECONDS = 1.0
WORKER_STOP_MARGIN_SECONDS = 5.0  # beyond the shutdown timeout, before a worker that has not stopped is killed


def serve(settings: Settings, demo: bool = False, workers: int = 1) -> int:
    if demo:  # refused before the port is bound: no `listening` for a server that will not serve
        asyncio.run(_refuse_demo_unless_empty(settings))
    if workers > 1:
        return _serve_workers(settings, demo, workers)
    serve_app(create_app(settings), settings, _announce_demo if demo else None)
    return 0


async def _refuse_demo_unless_empty(settings: Settings) -> None:
    async with open_storage(settings.database_url, 1, 1, settings.db_busy_timeout_seconds) as storage:
        await refuse_unless_empty(storage)


def _worker(settings: Settings, demo: bool) -> None:
    """One of `serve --workers N`: a whole gateway sharing the port with its siblings (SO_REUSEPORT: the
    kernel spreads new connections over them)."""
    configure_logging(settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops the workers
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        serve_app(create_app(settings), settings, _announce_demo if demo else None, reuse_port=True)
    except Exception as failure:  # one line, as `serve` alone says it; the parent then stops the others
        print(f"order-gateway: a worker cannot run with {redacted(settings.database_url)}: "
              f"{type(failure).__name__}: {failure}", file=sys.stderr)
        sys.exit(1)


def _stop_when_orphaned(parent: int) -> None:
    """A worker whose parent died (SIGKILL, a crash) stops gracefully rather than hold the port alone."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_workers(settings: Settings, demo: bool, workers: int) -> int:
    """Starts the workers, then waits: SIGTERM or SIGINT stops them all gracefully; a worker that dies on
    its own stops the others too (exit 1), for the supervisor above to restart the whole."""
    with _reserve(settings) as reserved, tempfile.TemporaryDirectory(prefix="order-gateway-metrics-") as counts:
        os.environ[MULTIPROCESS_DIR] = counts  # the workers count together (gateway.metrics)
        settings = replace(settings, port=reserved.getsockname()[1])
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker, args=(settings, demo and n == 0), name=f"worker-{n + 1}")
                     for n in range(workers)]
        for process in processes:
            process.start()
        log.info("workers", count=workers, pids=[process.pid for process in processes])
        stopping = _wait_for_signal_or_exit(processes)
        # A worker's graceful stop: its requests, then its webhook calls in flight (gateway.webhook_delivery).
        deadline = (time.monotonic() + settings.shutdown_timeout_seconds + settings.webhook_timeout_seconds
                    + WORKER_STOP_MARGIN_SECONDS)
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each finishes its requests and closes its database
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
    return 0 if stopping else 1


def _reserve(settings: Settings) -> socket.socket:
    """The port, bound (not listening) with SO_REUSEPORT: taken for the workers, and port 0 becomes one port
    for all of them. A plain bind first finds a port in use, another `--workers` gateway's included (whose
    SO_REUSEPORT sockets would let ours join it)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((settings.host, settings.port))
        except OSError as failure:
            raise listen_failure(failure, settings.host, settings.port) from None
        port = probe.getsockname()[1]
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((settings.host, port))
    except OSError as failure:  # taken in the moment between the two binds
        reserved.close()
        raise PortInUse(failure.errno, f"{settings.host}:{port} is in use") from None
    return reserved


def _wait_for_signal_or_exit(processes: Sequence[multiprocessing.process.BaseProcess]) -> bool:
    """True when SIGTERM or SIGINT came; False when a worker exited first."""
    signalled: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, note)
    sentinels = [process.sentinel for process in processes]
    while not signalled:
        # Ctrl-C, or systemd's SIGTERM to the whole group, reaches the workers too: one that stopped for it has
        # not exited on its own (the signal's handler ran while this waited, and the wait went on).
        if multiprocessing.connection.wait(sentinels, timeout=0.2) and not signalled:
            print("order-gateway: a worker exited; stopping the others", file=sys.stderr)
            return False
    return True


async def _announce_demo(app: web.Application, base: str) -> None:
    settings, storage = app[SETTINGS], app[STORAGE]
    credential, loaded = await load_demo(storage)
    token = token_service(settings, await signing_key(settings, storage)).issue(credential.partner_id, credential.api_key)
    curl = " ".join(
        [
            "curl -s",
            f"-H {shlex.quote('X-Api-Key: ' + credential.api_key)}",
            f"-H {shlex.quote('Authorization: Bearer ' + token)}",
            "-H 'X-Correlation-Id: demo-1'",
            shlex.quote(f"{base}/v3/customers/{DEMO_CUSTOMER}/orders?limit=5"),
        ]
    )
    print(f"Demo data {'loaded' if loaded else 'already loaded'}; listening on {base} (docs: {base}/api/docs).",
          flush=True)
    print(f"Demo partner {credential.partner_id}: its one working credential (earlier ones revoked; "
          "the secret is shown once):", flush=True)
    print(orjson.dumps(credential.as_json()).decode(), flush=True)
    print(f"Try:\n{curl}\n", flush=True)
