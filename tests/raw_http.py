"""Raw HTTP/1.1 over a loopback socket, for requests no HTTP client library will send (aiohttp's test client
and aiohttp.ClientSession build well-formed requests and refuse oversized or malformed ones themselves), and
a gateway process whose stdout and stderr are both kept."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from conftest import ROOT, free_port

ERROR_SHAPE = {"code", "message", "additionalDetails", "invalidFields"}


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after the answer

    def json(self) -> Any:
        return orjson.loads(self.body)

    def is_error_shape(self, code: str | None = None) -> bool:
        try:
            body = self.json()
        except orjson.JSONDecodeError:
            return False
        shaped = isinstance(body, dict) and set(body) == ERROR_SHAPE and isinstance(body["code"], str)
        return shaped and (code is None or body["code"] == code)


@dataclasses.dataclass
class Gateway:
    port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stderr.read_text().splitlines() if line.startswith("{")]

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


@contextlib.contextmanager
def gateway(db_url: str, tmp_path: Path, *args: str) -> Iterator[Gateway]:
    """A gateway process on a free loopback port, its stdout and stderr in files; stopped with SIGTERM."""
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve", "--port", str(port), *args],
            stdout=out, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": ""},
        )
        try:
            _wait_listening(port, process)
            yield Gateway(port, process, stdout, stderr)
        finally:
            process.terminate()
            process.wait(timeout=60)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        assert process.poll() is None, "server exited early"
        time.sleep(0.05)
    raise AssertionError("server did not start")


def exchange(port: int, data: bytes, *, drip: bytes = b"", every: float = 0.2, timeout: float = 10.0,
             close_after_send: bool = False) -> Answer | None:
    """Sends `data`, then `drip` one byte every `every` seconds; returns the answer (None when the server
    closed without one, or when `close_after_send` hangs up at once, as a client that goes away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        if close_after_send:
            return None
        received = bytearray()
        deadline = time.monotonic() + timeout
        pending = bytearray(drip)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], every if pending else deadline - time.monotonic())
            if not ready:
                if pending:
                    with contextlib.suppress(OSError):
                        sock.sendall(bytes(pending[:1]))
                    del pending[:1]
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return _parse(bytes(received), closed=True)
            received += chunk
            answer = _parse(bytes(received), closed=False)
            if answer is not None:
                return _closed_after(sock, answer)
        raise AssertionError(f"no answer in {timeout} s; got {bytes(received[:200])!r}")


def _closed_after(sock: socket.socket, answer: Answer) -> Answer:
    """Whether the server closes the connection right after the answer."""
    ready, _, _ = select.select([sock], [], [], 0.5)
    if ready:
        try:
            answer.closed = sock.recv(1) == b""
        except ConnectionResetError:  # closed with bytes of ours still unread (a drip that kept coming): a reset
            answer.closed = True
        except OSError:
            pass
    return answer


def _parse(data: bytes, closed: bool) -> Answer | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(body) < length:
        return None
    return Answer(status, headers, body[:length], closed)
