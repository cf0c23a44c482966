"""The operator's view of partners: `partners list`, `credentials list`, `partners set-rate-limit`,
run as separate processes; no key or secret is ever printed."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, sqlite_only

from gateway.partners import create_credential, create_partner, revoke_credential
from gateway.storage import open_storage


# The configured defaults (the suite's own environment sets a limit no test of other rules reaches).
DEFAULTS = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "50", "GATEWAY_RATE_LIMIT_BURST": "100"}


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


@pytest.fixture
async def issued(db_url: str) -> list[dict[str, str]]:
    """P1 with two credentials (one revoked), P2 with one: made in this process, the listing is the CLI's."""
    async with open_storage(db_url) as storage:
        first = await create_partner(storage, "Northwind", "P1")
        second = await create_credential(storage, "P1")
        other = await create_partner(storage, "Contoso", "P2")
        await revoke_credential(storage, second.api_key)
    return [credential.as_json() for credential in (first, second, other)]


def assert_no_secret(output: str, issued: list[dict[str, str]]) -> None:
    for credential in issued:
        assert credential["apiKey"] not in output and credential["clientSecret"] not in output


def test_partners_list_shows_the_limit_in_force_and_active_credentials(db_url: str, issued: Any) -> None:
    listed = cli(db_url, "partners", "list", env=DEFAULTS)
    assert lines(listed.stdout) == [
        {"partnerId": "P1", "name": "Northwind", "rateLimit": {"perSecond": 50, "burst": 100, "default": True},
         "activeCredentials": 1},
        {"partnerId": "P2", "name": "Contoso", "rateLimit": {"perSecond": 50, "burst": 100, "default": True},
         "activeCredentials": 1},
    ]
    assert_no_secret(listed.stdout + listed.stderr, issued)


def test_credentials_list_shows_fingerprints_never_keys(db_url: str, issued: Any) -> None:
    listed = cli(db_url, "credentials", "list", "P1")
    rows = lines(listed.stdout)
    assert [set(row) for row in rows] == [{"apiKeyId", "created", "revoked"}] * 2
    assert sorted(row["revoked"] is None for row in rows) == [False, True]
    for row in rows:
        assert len(row["apiKeyId"]) == 8 and row["created"].endswith("Z")
    assert_no_secret(listed.stdout + listed.stderr, issued)
    missing = cli(db_url, "credentials", "list", "NOBODY", check=False)
    assert missing.returncode == 1 and "NOBODY" in missing.stderr and missing.stdout == ""


def test_set_rate_limit_and_back_to_the_default(db_url: str, issued: Any) -> None:
    env = DEFAULTS
    changed = cli(db_url, "partners", "set-rate-limit", "P1", "--per-second", "2.5", "--burst", "5", env=env)
    assert lines(changed.stdout)[0]["rateLimit"] == {"perSecond": 2.5, "burst": 5, "default": False}
    listed = {row["partnerId"]: row["rateLimit"] for row in lines(cli(db_url, "partners", "list", env=env).stdout)}
    assert listed == {"P1": {"perSecond": 2.5, "burst": 5, "default": False},
                      "P2": {"perSecond": 50, "burst": 100, "default": True}}
    back = cli(db_url, "partners", "set-rate-limit", "P1", "--default", env=env)
    assert lines(back.stdout)[0]["rateLimit"] == {"perSecond": 50, "burst": 100, "default": True}


USAGE_ERRORS = [
    ["P1"],
    ["P1", "--per-second", "5"],
    ["P1", "--burst", "5"],
    ["P1", "--default", "--burst", "5"],
    ["P1", "--default", "--per-second", "5", "--burst", "5"],
    ["P1", "--per-second", "0", "--burst", "5"],
    ["P1", "--per-second", "nan", "--burst", "5"],
    ["P1", "--per-second", "inf", "--burst", "5"],
    ["P1", "--per-second", "1e-310", "--burst", "5"],
    ["P1", "--per-second", "5", "--burst", "0"],
    ["P1", "--per-second", "5", "--burst", "2.5"],
    # Stored, these overflowed the database's integers or the listing's JSON (a traceback, then every
    # `partners list` failed until --default).
    ["P1", "--per-second", "1", "--burst", "99999999999999999999999"],
    ["P1", "--per-second", "1", "--burst", "9223372036854775808"],
    ["P1", "--per-second", "100000000000000000000000", "--burst", "5"],
    # What float() takes and --burst did not: white space, digit separators.
    ["P1", "--per-second", " 5", "--burst", "5"],
    ["P1", "--per-second", "1_0", "--burst", "5"],
]


def test_set_rate_limit_usage_errors_change_nothing(db_url: str, issued: Any) -> None:
    sqlite_only(db_url, "usage errors are refused before the database is opened: one backend says it all")
    for args in USAGE_ERRORS:
        result = cli(db_url, "partners", "set-rate-limit", *args, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert lines(cli(db_url, "partners", "list").stdout)[0]["rateLimit"]["default"] is True


@pytest.mark.parametrize("args", [["--name", ""], ["--name", " padded"], ["--name", "N", "--partner-id", ""],
                                  ["--name", "N", "--partner-id", "P\nX"], ["--name", "N", "--partner-id", " P"]])
def test_partners_create_refuses_ids_and_names_no_listing_could_show(db_url: str, args: list[str]) -> None:
    """An empty id became a random one, and ids with line breaks or leading spaces were stored as given."""
    sqlite_only(db_url, "usage errors are refused before the database is opened: one backend says it all")
    result = cli(db_url, "partners", "create", *args, check=False)
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "no database" in cli(db_url, "partners", "list", check=False).stderr  # refused before it was opened


@pytest.mark.parametrize("command", [["partners", "list"], ["credentials", "list", "P1"], ["webhooks", "list"],
                                     ["credentials", "revoke", "K"], ["orders", "set-status", "1", "1000"],
                                     ["partners", "set-rate-limit", "P1", "--default"]])
def test_a_command_on_a_database_that_does_not_exist_fails_and_creates_none(tmp_path: Path,
                                                                          command: list[str]) -> None:
    """A mistyped --database made an empty database there (and its directories), and listed nothing."""
    missing = tmp_path / "typo" / "gateway.db"
    result = cli(f"sqlite:///{missing}", *command, check=False)
    assert (result.returncode, result.stdout) == (1, "") and f"no database at {missing}" in result.stderr
    assert not missing.parent.exists()


def test_set_rate_limit_of_an_unknown_partner_fails(db_url: str, issued: Any) -> None:
    result = cli(db_url, "partners", "set-rate-limit", "NOBODY", "--per-second", "5", "--burst", "5", check=False)
    assert result.returncode == 1 and "NOBODY" in result.stderr
