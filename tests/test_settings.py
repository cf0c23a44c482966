"""Settings: every one documented in the README, read from GATEWAY_* variables, refused when bad."""
from __future__ import annotations

import pytest
from conftest import ROOT

from gateway.settings import Settings, SettingsError


def test_every_setting_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in Settings.names():
        assert f"| `{name}` |" in table, name


def test_environment_overrides_defaults_and_the_command_line_overrides_both():
    settings = Settings.from_env({"GATEWAY_PORT": "9000", "GATEWAY_LOG_FORMAT": "console"}, port=9100)
    assert settings.port == 9100 and settings.log_format == "console"
    assert Settings.from_env({}).port == 8080


@pytest.mark.parametrize(
    "environ",
    [
        {"GATEWAY_PORT": "-1"},
        {"GATEWAY_PORT": "x"},
        {"GATEWAY_TOKEN_TTL_SECONDS": "3599"},
        {"GATEWAY_JWT_SECRET": "short"},
        {"GATEWAY_DB_POOL_MAX_SIZE": "0"},
        {"GATEWAY_IDEMPOTENCY_RETENTION_SECONDS": "5"},
        {"GATEWAY_DATABASE_URL": "mysql://x"},
        # Beyond the database's 64-bit integers: a partner's listing crashed on it.
        {"GATEWAY_RATE_LIMIT_PER_SECOND": "1e23"},
        {"GATEWAY_RATE_LIMIT_BURST": "99999999999999999999999"},
        # An attempt due in the year 33715, a schedule with a hole in it.
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": "999999999999"},
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": "1e300"},
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": "1,,2"},
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": "5,"},
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": ",".join(["5"] * 101)},
        {"GATEWAY_WEBHOOK_RETRY_SCHEDULE": "nan"},
    ],
)
def test_bad_values_are_refused_naming_the_setting(environ):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)
    name = next(iter(environ)).removeprefix("GATEWAY_").lower()
    assert name in str(raised.value) or next(iter(environ)) in str(raised.value)
