"""Server processes for the benchmarks: start, wait for, authenticate against, measure and stop them.

Every process runs on 127.0.0.1 in a session of its own, with the caller's environment minus every GATEWAY_*
variable (a developer's settings must not change what is measured) plus BENCH_ENV, its output in
bench/data/logs/<name>.log. Servers.stop_all() stops all of them, whatever happened.

The venv's editable install maps `gateway` to the checkout it was installed from, which need not be this
one (a git worktree shares its venv): PYTHONPATH puts this checkout first for every process started here,
and gateway_source() checks which code they run.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOG_DIR = BENCH / "data" / "logs"
READY_SECONDS = 60.0
STOP_SECONDS = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A benchmark measures the gateway's work, not a throttle: the rate limit (defaults 50/s, burst
# 100, per partner) is set far above any rate this machine reaches. Harmless where it is not implemented.
UNTHROTTLED = "1000000"
BENCH_ENV = {"GATEWAY_RATE_LIMIT_PER_SECOND": UNTHROTTLED, "GATEWAY_RATE_LIMIT_BURST": UNTHROTTLED}


@dataclass
class Server:
    name: str
    label: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    gateway: bool
    headers: Callable[[], dict[str, str]] = field(default=lambda: {})
    db_app: str | None = None  # application_name of its PostgreSQL connections

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process, all threads (aiosqlite's included)."""
        return process_cpu(self.process.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")


def server_env(root: Path = ROOT) -> dict[str, str]:
    """`root`: the checkout whose gateway the process runs (another revision's work tree, say)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | BENCH_ENV
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return env


def gateway_source() -> str:
    """The directory of the `gateway` package the started processes import; an error unless this checkout's."""
    found = subprocess.run(
        [sys.executable, "-c", "import gateway, os; print(os.path.dirname(os.path.abspath(gateway.__file__)))"],
        env=server_env(), cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    if Path(found) != ROOT / "gateway":
        raise RuntimeError(f"the servers would run the gateway of {found}, not {ROOT / 'gateway'}")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_bin() -> str:
    """The venv's `order-gateway` script, beside the running interpreter."""
    path = Path(sys.executable).with_name("order-gateway")
    if not path.exists():
        raise RuntimeError(f"{path} not found: run with the project's venv (.venv/bin/python)")
    return str(path)


class Servers:
    """Every process started here is stopped by stop_all(), whatever happened."""

    def __init__(self) -> None:
        self.started: list[Server] = []

    def start(self, name: str, label: str, argv: list[str], gateway: bool, port: int,
              db_app: str | None = None, root: Path = ROOT) -> Server:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = LOG_DIR / f"{name}.log"
        env = server_env(root)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=ROOT,
                start_new_session=True,
            )
        server = Server(name, label, process, port, log, gateway, db_app=db_app)
        self.started.append(server)
        return server

    def start_gateway(self, name: str, label: str, database_url: str, db_app: str | None = None,
                      flags: tuple[str, ...] = (), root: Path = ROOT) -> Server:
        """`order-gateway --database URL serve [FLAGS]` on a free port, of the checkout at `root`."""
        port = free_port()
        argv = [sys.executable, str(root / "run.py"), "--database", database_url, "serve", "--port", str(port), *flags]
        return self.start(name, label, argv, gateway=True, port=port, db_app=db_app, root=root)

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.started:
            try:
                server.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=STOP_SECONDS)
        self.started.clear()


async def wait_ready(session: aiohttp.ClientSession, server: Server, path: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.get(server.base + path, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {READY_SECONDS:.0f} s; see {server.log}")


async def gateway_headers(session: aiohttp.ClientSession, server: Server, info: dict[str, Any],
                          prefix: str = "bench") -> None:
    """A token from the gateway's own token endpoint, then headers with a fresh correlation id each time
    (`<prefix>-<n>`: give every process of one database its own prefix when the requests are POSTs)."""
    form = {"grant_type": "client_credentials", "client_id": info["apiKey"], "client_secret": info["clientSecret"]}
    async with session.post(server.base + "/ims/token/v3", data=form) as response:
        if response.status != 200:
            raise RuntimeError(f"{server.name}: token request answered {response.status}: {await response.text()}")
        token = (await response.json())["access_token"]
    counter = itertools.count(1)
    api_key, authorization = info["apiKey"], f"Bearer {token}"

    def headers() -> dict[str, str]:
        return {"X-Api-Key": api_key, "Authorization": authorization, "X-Correlation-Id": f"{prefix}-{next(counter)}"}

    server.headers = headers


# -- /proc -------------------------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the process in KiB: resident memory now, and its peak."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def system_busy() -> float:
    """CPU seconds spent by everything on the machine (all CPUs), from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def client_cpu() -> float:
    """CPU seconds used by this (load client) process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
