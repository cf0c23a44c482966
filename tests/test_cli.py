"""The operator command line, run as a separate process."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import pty
import subprocess
import sys
import time

import aiohttp
import orjson
import pytest
from conftest import (
    UNLIMITED,
    ROOT,
    cli,
    customer_record,
    order_record,
    partner_headers,
    process_headers,
    reseller_record,
    seed_with_cli,
    server_process,
    sqlite_only,
)

from gateway.settings import Settings


def write_jsonl(path, records) -> str:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def dataset():
    return [
        reseller_record("R1", "P1"),
        customer_record("C1", "R1", "2030-01-15"),
        order_record("2000000001", "C1", "2029-06-01T10:00:00Z", status="1002", offers=["OF-1", "OF-2"]),
        order_record("2000000002", "C1", "2029-07-01T10:00:00Z"),
    ]


def test_partners_create_prints_one_json_object(db_url):
    result = cli(db_url, "partners", "create", "--name", "Northwind", "--partner-id", "P1")
    created = json.loads(result.stdout)
    assert set(created) == {"partnerId", "apiKey", "clientSecret"}
    assert created["partnerId"] == "P1"
    assert len(created["apiKey"]) >= 32 and len(created["clientSecret"]) >= 32
    generated = json.loads(cli(db_url, "partners", "create", "--name", "Other").stdout)
    assert generated["partnerId"] and generated["partnerId"] != "P1"
    duplicate = cli(db_url, "partners", "create", "--name", "Again", "--partner-id", "P1", check=False)
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr


def test_credentials_create_and_revoke(db_url):
    cli(db_url, "partners", "create", "--name", "Northwind", "--partner-id", "P1")
    second = json.loads(cli(db_url, "credentials", "create", "P1").stdout)
    assert set(second) == {"partnerId", "apiKey", "clientSecret"} and second["partnerId"] == "P1"
    assert cli(db_url, "credentials", "create", "nobody", check=False).returncode != 0
    assert cli(db_url, "credentials", "revoke", second["apiKey"]).returncode == 0
    assert cli(db_url, "credentials", "revoke", "unknown-key", check=False).returncode != 0


def test_secrets_are_stored_only_as_hashes(db_url, tmp_path):
    sqlite_only(db_url, "reads the database's bytes from its file")
    created = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    for name in os.listdir(tmp_path):
        data = (tmp_path / name).read_bytes()
        assert created["apiKey"].encode() not in data
        assert created["clientSecret"].encode() not in data


def test_import_is_all_or_nothing_with_the_line_number(db_url, tmp_path):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    records = dataset()
    bad = dict(records[3], quantity=1)  # an unknown field on line 4
    path = write_jsonl(tmp_path / "bad.jsonl", [*records[:3], bad])
    result = cli(db_url, "import", path, check=False)
    assert result.returncode != 0
    assert "line 4" in result.stderr
    # Nothing of lines 1-3 was written: the full file now writes all four records.
    good = write_jsonl(tmp_path / "good.jsonl", records)
    assert json.loads(cli(db_url, "import", good).stdout) == {"written": 4, "unchanged": 0}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "planet"}', "type must be"),
        (b'{"type": "reseller", "resellerId": "R\\u0000", "partnerId": "P1"}', "NUL"),
        (orjson.dumps(customer_record("C9", "NO-SUCH-RESELLER")), "unknown resellerId"),
        (orjson.dumps(order_record("2000000009", "NO-SUCH-CUSTOMER", "2029-01-01T00:00:00Z")), "unknown customerId"),
        # No foreign key says so on PostgreSQL (gateway/storage/commit_order.py): the import itself does.
        (orjson.dumps(order_record("2000000009", "C1", "2029-01-01T00:00:00Z", reseller_id="NO-SUCH-RESELLER")),
         "unknown resellerId"),
        (orjson.dumps(order_record("2000000009", "C1", "2029-01-01T00:00:00+00:00")), "creationDate"),
        (orjson.dumps(order_record("2000000009", "C1", "2029-01-01T00:00:00Z", status="9999")), "status"),
        # Ids are listed, logged and sent back in paths: no control character, no space at either end.
        (b'{"type": "reseller", "resellerId": "R\\nX", "partnerId": "P1"}', "control characters"),
        (b'{"type": "reseller", "resellerId": " R9", "partnerId": "P1"}', "white space"),
        (orjson.dumps(customer_record("C\tX", "R1")), "control characters"),
        (orjson.dumps(order_record("2000000009 ", "C1", "2029-01-01T00:00:00Z")), "white space"),
        # Unicode's white space at an end, and characters that show nothing or turn the text around, anywhere.
        (b'{"type": "reseller", "resellerId": "\\u00a0R9", "partnerId": "P1"}', "white space"),
        (orjson.dumps(customer_record("C\u200bX", "R1")), "control characters"),
        (orjson.dumps(customer_record("C\u202eX", "R1")), "control characters"),
        (orjson.dumps(customer_record("C\u00adX", "R1")), "control characters"),
        (orjson.dumps(customer_record("C\U000e0041X", "R1")), "control characters"),
        # A joiner stands between two characters that show: alone, at an end or doubled it would only hide.
        (orjson.dumps(customer_record("C9\u200d", "R1")), "control characters"),
        (orjson.dumps(customer_record("C\u200c\u200c9", "R1")), "control characters"),
        (orjson.dumps(customer_record("C9", "R1", "2026-2-8")), "cotermDate"),
        (orjson.dumps(customer_record("C9", "R1", "\uff12\uff10\uff12\uff16-02-28")), "cotermDate"),
        # The file's version of a record is one: with two that differ, each import wrote both in turn (and
        # an event for each), so that re-importing the file changed it again. The same twice is refused too.
        (orjson.dumps(order_record("2000000002", "C1", "2029-07-01T10:00:00Z", status="1004")),
         "order '2000000002' is in the file more than once"),
        (orjson.dumps(customer_record("C1", "R1", "2030-01-15")), "customer 'C1' is in the file more than once"),
    ],
)
def test_import_names_the_bad_line_and_reason(db_url, tmp_path, line, reason):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in dataset()) + b"\n" + line + b"\n")
    result = cli(db_url, "import", str(path), check=False)
    assert result.returncode != 0
    assert "line 6" in result.stderr and reason in result.stderr


@pytest.mark.parametrize("line", [
    orjson.dumps({**customer_record("C9", "R1"), "\x1b[2J\x1b[31mPWNED\nfake line": 1}),
    orjson.dumps({"type": "\x1b[2J" + "x" * 5_000_000}),
])
def test_what_a_bad_line_holds_is_quoted_escaped_and_cut_short(db_url, tmp_path, line):
    """An unknown member's name reached stderr as it was: a terminal's control sequences, a line break (a
    second line), and 5 MB of a value in the one line."""
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in dataset()[:2]) + line + b"\n")
    result = cli(db_url, "import", str(path), check=False)
    assert result.returncode == 1 and result.stderr.startswith("order-gateway: ") and "line 3" in result.stderr
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr and len(result.stderr) < 300


def test_a_file_that_starts_with_a_byte_order_mark_is_read(db_url, tmp_path):
    """Some editors start a UTF-8 file with one: line 1 was refused as "not JSON"."""
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(orjson.dumps(r) + b"\n" for r in dataset()))
    assert json.loads(cli(db_url, "import", str(path)).stdout)["written"] == len(dataset())


def test_reimport_changes_nothing_and_changed_records_replace(db_url, tmp_path):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    records = dataset()
    path = write_jsonl(tmp_path / "data.jsonl", records)
    assert json.loads(cli(db_url, "import", path).stdout) == {"written": 4, "unchanged": 0}
    assert json.loads(cli(db_url, "import", path).stdout) == {"written": 0, "unchanged": 4}
    records[3] = dict(records[3], status="1004")
    path = write_jsonl(tmp_path / "data.jsonl", records)
    assert json.loads(cli(db_url, "import", path).stdout) == {"written": 1, "unchanged": 3}


async def test_imported_and_updated_orders_are_served(db_url, tmp_path, aiohttp_client):
    from gateway.app import create_app

    partner = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    records = dataset()
    cli(db_url, "import", write_jsonl(tmp_path / "data.jsonl", records))
    client = await aiohttp_client(create_app(Settings(**UNLIMITED, database_url=db_url, credential_cache_seconds=0)))
    credential = type("C", (), {"api_key": partner["apiKey"], "client_secret": partner["clientSecret"]})
    headers = await partner_headers(client, credential)
    url = "/v3/customers/C1/orders?start-date=2029-01-01&end-date=2029-12-31"
    before = await (await client.get(url, headers=headers)).json()
    assert [o["status"] for o in before["items"]] == ["1000", "1002"]
    records[3] = dict(records[3], status="1004")
    cli(db_url, "import", write_jsonl(tmp_path / "data.jsonl", records))
    after = await (await client.get(url, headers=headers)).json()
    assert [o["status"] for o in after["items"]] == ["1004", "1002"]


def test_set_status_completes_an_order_and_its_lines_get_subscriptions(db_url, tmp_path):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    cli(db_url, "import", write_jsonl(tmp_path / "data.jsonl", dataset()))
    result = cli(db_url, "orders", "set-status", "2000000001", "1000")
    order = json.loads(result.stdout)
    assert order["status"] == "1000"
    assert [line["status"] for line in order["lineItems"]] == ["1000", "1000"]
    subscriptions = [line["subscriptionId"] for line in order["lineItems"]]
    assert all(subscriptions) and len(set(subscriptions)) == 2
    again = json.loads(cli(db_url, "orders", "set-status", "2000000001", "1000").stdout)
    assert [line["subscriptionId"] for line in again["lineItems"]] == subscriptions
    assert cli(db_url, "orders", "set-status", "no-such-order", "1000", check=False).returncode != 0
    assert cli(db_url, "orders", "set-status", "2000000001", "7777", check=False).returncode != 0


def test_import_shows_a_progress_bar_on_a_terminal(db_url, tmp_path):
    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    path = write_jsonl(tmp_path / "data.jsonl", dataset())
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "--database", db_url, "import", path],
            stdout=subprocess.PIPE, stderr=follower, timeout=120, cwd=ROOT,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"import" in shown and b"100%" in shown
    # Without a terminal, stderr stays free of the bar.
    assert "100%" not in cli(db_url, "import", path).stderr


async def test_revocation_reaches_a_running_server_within_seconds(db_url, tmp_path):
    partner = seed_with_cli(db_url, tmp_path)
    with server_process(db_url) as base:  # default settings: credentials trusted for 2 s
        async with aiohttp.ClientSession(base) as http:
            headers = await process_headers(http, partner, "revoke-me")
            async with http.get("/v3/customers/C1/orders", headers=headers) as response:
                assert response.status == 200
            cli(db_url, "credentials", "revoke", partner["apiKey"])
            revoked_at = time.monotonic()
            while time.monotonic() - revoked_at < 10:
                async with http.get("/v3/customers/C1/orders", headers=headers) as response:
                    if response.status == 403:
                        assert (await response.json())["code"] == "4115"
                        break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the revoked key still works after 10 s")
    assert time.monotonic() - revoked_at < 5


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_an_import_of_a_file_that_is_not_there_creates_no_database(tmp_path, name):
    """It made the database's directory and an empty database, then said it could not read the file."""
    db = tmp_path / "new" / "gateway.db"
    result = cli(f"sqlite:///{db}", "import", str(tmp_path / name), check=False)
    assert result.returncode == 1 and "cannot read" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_an_import_whose_file_fails_to_read_midway_says_so(tmp_path):
    """/proc/self/mem opens, and its first read fails (EIO): that was reported as the database's failure."""
    result = cli(f"sqlite:///{tmp_path}/gateway.db", "import", "/proc/self/mem", check=False)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "cannot read /proc/self/mem: Input/output error; nothing was written" in result.stderr


def test_ids_and_names_may_join_letters_and_emoji(db_url, tmp_path):
    """The zero-width (non-)joiner is no invisible trick: Persian words and emoji sequences need it."""
    name, partner_id = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "P-\U0001f469\u200d\U0001f4bb"
    created = json.loads(cli(db_url, "partners", "create", "--name", name, "--partner-id", partner_id).stdout)
    assert created["partnerId"] == partner_id
    path = write_jsonl(tmp_path / "data.jsonl", [reseller_record("R\u200c1", partner_id)])
    assert json.loads(cli(db_url, "import", path).stdout) == {"written": 1, "unchanged": 0}


def test_an_import_reads_a_pipe_and_a_file_name_that_is_not_utf8(db_url, tmp_path):
    """`import <(zcat dump.gz)` was "no such file" (a pipe is no regular file); a file name that is not
    UTF-8, which the system takes as it is, was a usage error."""
    import threading

    cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(orjson.dumps(reseller_record("R1", "P1")) + b"\n"))
    writer.start()
    assert json.loads(cli(db_url, "import", str(pipe)).stdout) == {"written": 1, "unchanged": 0}
    writer.join(10)
    odd = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jsonl")
    write_jsonl(Path(odd), [reseller_record("R2", "P1")])
    assert json.loads(cli(db_url, "import", odd).stdout) == {"written": 1, "unchanged": 0}
