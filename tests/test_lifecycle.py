"""Process lifecycle: clear refusals of bad settings, graceful shutdown on SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from conftest import ROOT, free_port, locked_elsewhere, process_headers, seed_with_cli, sqlite_only


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["serve", "--port", "-5"], {}, "port"),
        (["serve", "--port", "abc"], {}, "port"),
        (["serve", "--max-body-bytes", "10"], {}, "max_body_bytes"),
        (["serve", "--log-format", "xml"], {}, "log_format"),
        (["serve"], {"GATEWAY_LOG_FORMAT": "xml"}, "log_format"),
        (["serve"], {"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        (["serve"], {"GATEWAY_TOKEN_TTL_SECONDS": "60"}, "token_ttl_seconds"),
        (["--database", "sqlite:////proc/no-such-dir/gateway.db", "serve"], {}, "/proc/no-such-dir"),
        (["--database", "mysql://localhost/x", "serve"], {}, "database_url"),
    ],
)
def test_bad_settings_exit_non_zero_with_one_clear_line(args, env, says):
    result = run(*args, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0]


def test_unreadable_database_file(tmp_path):
    path = tmp_path / "gateway.db"
    path.mkdir()  # a directory where the database file should be
    result = run("--database", f"sqlite:///{path}", "partners", "create", "--name", "N")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


BODY = {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{"extLineItemNumber": 1, "offerId": "O", "quantity": 1}]}


async def _serving(db_url: str, *serve_args: str) -> tuple[subprocess.Popen[bytes], int]:
    """`serve` in a process of its own, once it answers; its stderr is piped."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve", "--port",
                             str(port), *serve_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get("/healthz"):
                    break
            await asyncio.sleep(0.05)
    return proc, port


async def _serving_seeded(db_url: str, tmp_path: Any, key: str,
                          *serve_args: str) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    """A seeded database `serve`d (seed_with_cli), with its partner's headers (a token of the process, `key`
    the correlation id)."""
    partner = seed_with_cli(db_url, tmp_path)
    proc, port = await _serving(db_url, *serve_args)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            return proc, port, await process_headers(http, partner, key)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


async def _sigterm_during_a_write(db_url: str, tmp_path: Any, hold_after_sigterm: float,
                                  *serve_args: str) -> tuple[int, int | None, str, bool]:
    """SIGTERM while an order is in flight; (exit status, the order's HTTP status or None, stderr, whether the
    process had exited when the lock was released)."""
    sqlite_only(db_url, "holds SQLite's write lock from outside to keep a request in flight; "
                        "shutdown itself does not depend on the backend")
    proc, port, headers = await _serving_seeded(db_url, tmp_path, "slow-one", *serve_args)
    status: int | None = None
    exited_while_locked = False
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            # Another process holds the write lock: the order's transaction waits for it, so the request is
            # received in full and still executing when SIGTERM arrives.
            blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            request = asyncio.create_task(http.post("/v3/customers/C1/orders", json=BODY, headers=headers))
            await asyncio.sleep(0.5)
            assert not request.done()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(hold_after_sigterm)
            exited_while_locked = proc.poll() is not None
            blocker.execute("ROLLBACK")
            blocker.close()
            with contextlib.suppress(aiohttp.ClientError):
                response = await asyncio.wait_for(request, timeout=30)
                status = response.status
                await response.read()
        exit_status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    return exit_status, status, stderr, exited_while_locked


async def test_sigterm_lets_the_in_flight_request_finish(db_url, tmp_path):
    exit_status, status, stderr, _ = await _sigterm_during_a_write(db_url, tmp_path, 0.5)
    assert (exit_status, status) == (0, 201)
    assert "Traceback" not in stderr


async def test_a_request_cut_short_by_shutdown_gets_its_log_line(db_url, tmp_path):
    exit_status, status, stderr, exited_while_locked = await _sigterm_during_a_write(
        db_url, tmp_path, 3, "--shutdown-timeout-seconds", "0.5"
    )
    assert exit_status == 0 and status is None  # no answer: the connection was closed
    # Within the shutdown timeout and a little: the cancelled request's transaction no longer sits out the
    # busy timeout (5 s) waiting for the lock, which is still held.
    assert exited_while_locked
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    cut = [line for line in lines if line.get("event") == "request" and line.get("route", "").startswith("/v3")]
    assert len(cut) == 1, stderr
    assert (cut[0]["status"], cut[0]["error_code"], cut[0]["level"]) == (499, "client_closed", "info")
    assert "Traceback" not in stderr


def _posts_logged(proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    """Stops the gateway; the request lines of its POSTs under /v3."""
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=30)[1].decode()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request" and line.get("method") == "POST"
            and str(line.get("path", "")).startswith("/v3")]


async def test_a_client_gone_while_its_request_runs_gets_a_499_line(db_url, tmp_path):
    """The request ran to its end (the order is placed, and its answer stored for the retry) but no answer
    reached the client: the line said 201."""
    sqlite_only(db_url, "holds SQLite's write lock from outside to keep a request in flight")
    proc, port, headers = await _serving_seeded(db_url, tmp_path, "gone-away")
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with locked_elsewhere(db_url, "orders"):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(http.post("/v3/customers/C1/orders", json=BODY, headers=headers), 0.5)
            await asyncio.sleep(0.5)
            async with http.post("/v3/customers/C1/orders", json=BODY, headers=headers) as retried:
                assert retried.headers["Idempotent-Replayed"] == "true"  # it did run: the retry finds its answer
    finally:
        placed = _posts_logged(proc)
    assert [(line["status"], line["error_code"], line.get("idempotency")) for line in placed] == [
        (499, "client_closed", "stored"), (201, None, "replayed")]


async def test_a_client_gone_before_its_503_gets_a_499_line_not_the_503(db_url, tmp_path):
    """The line of an answer no one received says client_closed, whatever the answer would have said: it
    said 499 with the 503's error code."""
    sqlite_only(db_url, "holds SQLite's write lock from outside past the busy timeout")
    proc, port, headers = await _serving_seeded(db_url, tmp_path, "gone-before-503",
                                                "--db-busy-timeout-seconds", "1")
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with locked_elsewhere(db_url, "orders"):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(http.post("/v3/customers/C1/orders", json=BODY, headers=headers), 0.3)
                await asyncio.sleep(1.5)  # the gateway gave up at its busy timeout, and answered no one
    finally:
        placed = _posts_logged(proc)
    assert [(line["status"], line["error_code"], line["level"]) for line in placed] == [(499, "client_closed", "info")]


async def test_sigterm_lets_a_request_still_receiving_its_body_finish(db_url, tmp_path):
    """aiohttp drops what arrives once shutdown begins: a body still arriving then waited for the body timeout
    (30 s, the process with it) and was answered 408. The request in progress gets its body and is served."""
    sqlite_only(db_url, "shutdown does not depend on the backend")
    proc, port, headers = await _serving_seeded(db_url, tmp_path, "arriving")
    try:
        body = json.dumps(BODY).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /v3/customers/C1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n{head}\r\n".encode() + body[:10])
        await writer.drain()
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        writer.write(body[10:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 201"), status_line
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
