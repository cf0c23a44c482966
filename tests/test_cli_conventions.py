"""The command line's conventions: help for every command and argument, --version, exit codes, Ctrl-C, the
demo's one credential and its curl, a port in use, and `serve --workers N`."""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import POSTGRES_URL, ROOT, SKIP_POSTGRES, cli, customer_record, free_port, order_record, reseller_record

from gateway.version import VERSION
from gateway.cli import build_parser


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser under `parser`, with its command line."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += subcommands(child)
    return found


def test_every_command_and_argument_has_help() -> None:
    for prog, parser in subcommands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), prog
            else:
                assert action.help, f"{prog}: {action.dest} has no help"


def test_help_version_and_usage_exit_codes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/g.db"
    version = cli(db, "--version")
    assert version.stdout.strip() == f"order-gateway {VERSION}"
    assert "webhooks" in cli(db, "--help").stdout
    assert "--workers" in cli(db, "serve", "--help").stdout
    for args in (["bogus"], ["import"], ["orders", "set-status", "1", "9999"], ["serve", "--workers", "0"],
                 ["serve", "--workers", "100000000000000000000000"], ["webhooks", "deliveries", "W", "--limit", "1e9"]):
        refused = cli(db, *args, check=False)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, (args, refused.stderr)
    failed = cli(db, "credentials", "create", "NOBODY", check=False)
    assert failed.returncode == 1 and len(failed.stderr.splitlines()) == 1 and "Traceback" not in failed.stderr


@pytest.mark.parametrize("url", ["postgresql://gw:hunter2@127.0.0.1:1/test",
                                 "postgresql://gw@127.0.0.1:1/test?sslmode=disable&password=hunter2",
                                 "postgresql://gw@127.0.0.1:1/test?sslpassword=hunter2",
                                 "postgresql://gw@127.0.0.1:1/test?pass%77ord=hunter2"])  # asyncpg decodes names
def test_a_database_that_cannot_be_reached_is_named_without_its_password(url: str) -> None:
    failed = cli(url, "partners", "list", check=False)
    assert failed.returncode == 1 and len(failed.stderr.splitlines()) == 1, failed.stderr
    assert "127.0.0.1:1" in failed.stderr and "hunter2" not in failed.stderr and "***" in failed.stderr


@pytest.mark.parametrize("url", ["postgresql://gw:hunter2@127.0.0.1:99999/test", "postgresql://gw:hunter2@[::1/test",
                                 "mysql://gw:hunter2@127.0.0.1/test", "postgresql://gw:hun/ter2@127.0.0.1:1/test",
                                 "postgresql://gw:hun?ter2@127.0.0.1:99999/test"])
def test_a_database_url_that_does_not_parse_is_a_usage_error_without_its_password(url: str) -> None:
    """A port out of range and a broken IPv6 host ended in a driver's traceback (OverflowError, ValueError)."""
    refused = cli(url, "partners", "list", check=False)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "setting database_url=" in refused.stderr and "hun" not in refused.stderr and "ter2" not in refused.stderr


def test_a_url_of_several_hosts_is_no_usage_error() -> None:
    """libpq's host list (for failover), which asyncpg takes, was refused as a port that is no number."""
    failed = cli("postgresql://gw:hunter2@127.0.0.1:1,127.0.0.1:2/test", "partners", "list", check=False)
    assert failed.returncode == 1 and len(failed.stderr.splitlines()) == 1, failed.stderr
    assert "hunter2" not in failed.stderr


@pytest.mark.parametrize("args", [("partners", "create", "--name", "caf\udce9"),
                                  ("webhooks", "add", "P\udcff", "https://example.com/hook"),
                                  ("credentials", "list", "P\udcff"), ("orders", "set-status", "O\udcff", "1000")])
def test_an_argument_that_is_not_utf8_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which PostgreSQL's driver refused with a
    traceback, and SQLite's with a line blaming the database."""
    db = f"sqlite:///{tmp_path}/gateway.db"
    cli(db, "partners", "create", "--name", "N", "--partner-id", "P1")
    refused = cli(db, *args, check=False)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "not UTF-8 text" in refused.stderr


def test_a_server_that_never_answers_is_named_with_a_reason(tmp_path: Path) -> None:
    """The line ended in "...: " and nothing: a timeout's text is empty."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"postgresql://gw@127.0.0.1:{listener.getsockname()[1]}/test"
        failed = cli(url, "partners", "list", check=False, env={**os.environ, "GATEWAY_DB_BUSY_TIMEOUT_SECONDS": "1"})
    assert failed.returncode == 1 and len(failed.stderr.splitlines()) == 1, failed.stderr
    assert failed.stderr.strip().endswith(": no answer within the busy timeout"), failed.stderr


@pytest.mark.skipif(not POSTGRES_URL, reason=SKIP_POSTGRES)
@pytest.mark.parametrize(("change", "says"), [
    ({"path": "/no_such_database"}, 'database "no_such_database" does not exist'),
    ({"netloc": "no_such_role@{host}"}, 'role "no_such_role" does not exist'),
    ({"query": "search_path=no_such_schema"}, "no schema has been selected"),
])
def test_a_server_that_refuses_says_why_in_one_line(change: dict[str, str], says: str) -> None:
    parts = urlsplit(POSTGRES_URL)
    refused = cli(urlunsplit(parts._replace(**{k: v.format(host=parts.hostname + f":{parts.port or 5432}")
                                               for k, v in change.items()})), "partners", "list", check=False)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [refused.stderr.strip()], refused.stderr
    assert says in refused.stderr


def test_output_to_a_closed_pipe_is_one_line_saying_so(tmp_path: Path) -> None:
    """The command was carried out (its write committed before it printed); only its output is lost. It
    used to say "cannot start with sqlite://tmp/...", untrue, and with two slashes of the URL lost."""
    url = f"sqlite:///{tmp_path}/gateway.db"
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", url, "partners", "create",
                                "--name", "Pipe", "--partner-id", "PIPE1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    process.stdout.close()  # the reader goes away before anything is written
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and err.splitlines() == [
        "order-gateway: the command was carried out, but its output could not be written: Broken pipe"], err
    command = f'"{sys.executable}" "{ROOT / "run.py"}" --database "{url}" partners list'
    closed = subprocess.run(["sh", "-c", f"{command} >&-"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    full = subprocess.run(["sh", "-c", f"{command} >/dev/full"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    for result, says in ((closed, "stdout is closed"), (full, "No space left on device")):
        assert result.returncode == 1 and result.stderr.splitlines() == [
            f"order-gateway: the command was carried out, but its output could not be written: {says}"], result.stderr
    listed = [json.loads(line) for line in cli(url, "partners", "list").stdout.splitlines()]
    assert [partner["partnerId"] for partner in listed] == ["PIPE1"]
    directory = tmp_path / "a-directory"
    directory.mkdir()
    refused = cli(f"sqlite:///{directory}", "partners", "list", check=False)
    assert refused.returncode == 1 and f"sqlite:///{directory}:" in refused.stderr, refused.stderr


def test_ctrl_c_during_an_import_writes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/g.db"
    cli(db, "partners", "create", "--name", "N", "--partner-id", "P1")
    seed = tmp_path / "seed.jsonl"
    seed.write_text("\n".join(json.dumps(r) for r in [reseller_record("R1", "P1"), customer_record("C1", "R1")]))
    cli(db, "import", str(seed))
    big = tmp_path / "big.jsonl"
    with open(big, "w") as out:
        for n in range(100_000):
            out.write(json.dumps(order_record(f"{n:010d}", "C1", "2026-01-02T03:04:05Z")) + "\n")
    importing = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "import", str(big)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(2.0)
    importing.send_signal(signal.SIGINT)
    out, err = importing.communicate(timeout=60)
    assert importing.returncode == 1, (out, err)
    assert len(err.splitlines()) == 1 and "interrupted" in err and "Traceback" not in err, err
    with contextlib.closing(sqlite3.connect(db.removeprefix("sqlite:///"))) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM order_events").fetchone() == (0,)


def test_ctrl_c_at_any_moment_is_one_line_and_loses_no_secret(tmp_path: Path) -> None:
    """SIGINT while the command line loads, parses, writes or prints: exit 1 (nothing done) or 0 (done, and
    what it made printed), one line on stderr, never a traceback, never a partner whose secret went unseen.
    (From 0.1 s: earlier, the interpreter itself is starting, before any code of ours can listen.)"""
    db = f"sqlite:///{tmp_path}/g.db"
    (tmp_path / "empty.jsonl").write_bytes(b"")
    cli(db, "import", str(tmp_path / "empty.jsonl"))  # the database exists: every run below only adds a partner
    printed = set()
    for n, delay in enumerate((0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.45, 0.6)):
        command = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "partners", "create",
                                    "--name", "N", "--partner-id", f"P{n}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(delay)
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=60)
        assert command.returncode in (0, 1) and "Traceback" not in err and len(err.splitlines()) <= 1, (delay, err)
        if command.returncode == 0:
            printed.add(json.loads(out)["partnerId"])
    created = {json.loads(line)["partnerId"] for line in cli(db, "partners", "list").stdout.splitlines()}
    assert created == printed


def wait_for_line(process: subprocess.Popen[str], pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if re.search(pattern, line):
            return line
        assert line or process.poll() is None, "the gateway exited"
    raise AssertionError(f"no line matching {pattern!r}")


def demo(db: str, port: int) -> tuple[subprocess.Popen[str], str]:
    """A demo gateway and the curl it printed, read as soon as it was printed."""
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "serve", "--demo",
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=ROOT)
    return process, wait_for_line(process, r"^curl ").strip()


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.communicate(timeout=30)


def test_demo_prints_a_working_curl_once_listening_and_keeps_one_credential(tmp_path: Path) -> None:
    db, port = f"sqlite:///{tmp_path}/demo.db", free_port()
    for start in range(2):
        process, curl = demo(db, port)
        try:
            answer = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=30)
            page = json.loads(answer.stdout)
            assert page["count"] == 5 and page["totalCount"] > 5, answer.stdout
        finally:
            stop(process)
    credentials = [json.loads(line) for line in cli(db, "credentials", "list", "demo-partner").stdout.splitlines()]
    assert len(credentials) == 2 and [c["revoked"] is None for c in credentials].count(True) == 1


def test_demo_refuses_a_database_that_holds_data(tmp_path: Path) -> None:
    """The demo's data and its working credential go into an empty database only, never beside real data."""
    db = f"sqlite:///{tmp_path}/g.db"
    cli(db, "partners", "create", "--name", "Real", "--partner-id", "REAL")
    for workers in ("1", "2"):
        refused = cli(db, "serve", "--demo", "--port", str(free_port()), "--workers", workers, check=False)
        assert refused.returncode == 1 and "empty database" in refused.stderr.splitlines()[-1], refused.stderr
        # Refused before the port is bound: a supervisor waiting for `listening` was told the server was up.
        assert len(refused.stderr.splitlines()) == 1 and "listening" not in refused.stderr, refused.stderr
    assert [json.loads(line)["partnerId"] for line in cli(db, "partners", "list").stdout.splitlines()] == ["REAL"]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])
def test_an_address_that_cannot_be_listened_on_is_named(tmp_path: Path, host: str, workers: str) -> None:
    db, port = f"sqlite:///{tmp_path}/g.db", free_port()
    refused = cli(db, "serve", "--host", host, "--port", str(port), "--workers", workers, check=False)
    assert refused.returncode == 1, refused.stderr
    said = [line for line in refused.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and f"cannot listen on {host}:{port}" in said[0] and "in use" not in said[0], said


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    db, port = f"sqlite:///{tmp_path}/g.db", free_port()
    process, _ = demo(db, port)
    try:
        taken = cli(db, "serve", "--port", str(port), check=False)
        assert taken.returncode == 1 and f"127.0.0.1:{port} is in use" in taken.stderr
        assert len(taken.stderr.splitlines()) == 1
    finally:
        stop(process)


@pytest.mark.parametrize("workers", [2])
def test_workers_share_one_port_and_stop_together(tmp_path: Path, workers: int) -> None:
    db, port = f"sqlite:///{tmp_path}/g.db", free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        parent = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "serve", "--port",
                                   str(port), "--workers", str(workers), "--shutdown-timeout-seconds", "5"],
                                  stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    try:
        listening = wait_for_events(log, "listening", workers)
        pids = {line["pid"] for line in listening}
        assert len(pids) == workers and {line["address"] for line in listening} == {f"http://127.0.0.1:{port}"}
        for _ in range(20):  # each on a connection of its own; refused (403), so logged at info
            assert get(port, "/v3/customers/C1/orders")[0] == 403
        answered = {line["pid"] for line in wait_for_events(log, "request", 20)}
        assert answered == pids, "one worker answered every connection"
        for _ in range(3):  # whichever worker answers a scrape, it counts for the whole gateway
            assert 'route="/v3/customers/{customerId}/orders",status="403"} 20.0' in get(port, "/metrics")[1]
        second = cli(db, "serve", "--port", str(port), "--workers", "2", check=False)
        assert second.returncode == 1 and "is in use" in second.stderr  # not joined to the first one's port
        started = time.monotonic()
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
        assert {line["pid"] for line in wait_for_events(log, "stopped", workers)} == pids
    finally:
        parent.kill()  # its workers, orphaned, stop on their own within a second
        parent.wait(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_workers_stopped_with_their_group_exit_0(tmp_path: Path, signum: int) -> None:
    """Ctrl-C on a terminal, or systemd's SIGTERM to the whole control group, reaches the workers as well as
    the parent: a worker stopping for it is no failure (it was exit 1, 'a worker exited')."""
    db, port = f"sqlite:///{tmp_path}/g.db", free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        parent = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "serve", "--port",
                                   str(port), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                                  start_new_session=True)
    try:
        wait_for_events(log, "listening", 2)
        os.killpg(parent.pid, signum)
        assert parent.wait(timeout=30) == 0, log.read_text()
        assert "a worker exited" not in log.read_text()
    finally:
        parent.kill()
        parent.wait(timeout=30)


def test_workers_that_cannot_start_say_so_in_a_line(tmp_path: Path) -> None:
    failed = cli("postgresql://gateway:secret-pw@127.0.0.1:1/none", "serve", "--port", str(free_port()),
                 "--workers", "2", check=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr and "secret-pw" not in failed.stderr
    assert "a worker cannot run" in failed.stderr and "a worker exited" in failed.stderr


def test_workers_stop_when_their_parent_dies(tmp_path: Path) -> None:
    db, port = f"sqlite:///{tmp_path}/g.db", free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        parent = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--database", db, "serve", "--port",
                                   str(port), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    try:
        pids = {line["pid"] for line in wait_for_events(log, "listening", 2)}
        parent.kill()
        assert {line["pid"] for line in wait_for_events(log, "stopped", 2, timeout=15)} == pids
    finally:
        parent.kill()
        parent.wait(timeout=30)


def wait_for_events(log: Path, event: str, count: int, timeout: float = 30) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("event") == event]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} {event} events of {count}"
        time.sleep(0.1)


def get(port: int, path: str) -> tuple[int, str]:
    """GET on a connection of its own."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()
