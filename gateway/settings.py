"""Settings: one frozen dataclass, built from an injectable mapping (the environment by default)."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

ENV_PREFIX = "GATEWAY_"
DEFAULT_DATABASE_URL = "sqlite:///var/gateway.db"
MIN_SIGNING_KEY_CHARS = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
MIN_TOKEN_TTL_SECONDS = 3600  # clients renew a few minutes before expiry: never hand out shorter tokens
LOG_FORMATS = ("json", "console")
SECRET_SETTINGS = frozenset({"jwt_secret", "webhook_secret_key"})  # never echoed in an error
TRUE_WORDS, FALSE_WORDS = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
MIN_RATE_PER_SECOND = 0.001  # one request in about 17 minutes; slower limits overflow the header arithmetic
# Far beyond any partner's traffic; larger values overflow the database's 64-bit integers and JSON output.
MAX_RATE_PER_SECOND = 1e9
MAX_BURST = 1_000_000_000


class SettingsError(ValueError):
    """A setting has a value the gateway cannot run with; the message names it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    log_format: str = "json"
    # Signing key for access tokens; empty means "generate one once and keep it in the database".
    jwt_secret: str = ""
    jwt_issuer: str = "order-gateway"
    token_ttl_seconds: int = 86400
    # Clock skew tolerated when checking a token's exp/iat.
    token_leeway_seconds: int = 60
    # How long a looked-up credential is trusted before the database is asked again: a revocation
    # reaches every running server within this many seconds.
    credential_cache_seconds: float = 2.0
    # PostgreSQL connections each process keeps (ignored on SQLite).
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    max_body_bytes: int = 1024 * 1024
    # Memory for the in-process history cache (indexes and bodies of recently read customers); 0 turns it off
    # and every page comes from SQL. One customer may take at most half of it.
    history_cache_bytes: int = 512 * 1024 * 1024
    # How long a correlation id's outcome is kept and replayed.
    idempotency_retention_seconds: int = 10 * 86400
    # How often expired answers and events are purged in the background.
    idempotency_purge_interval_seconds: float = 3600.0
    # How long an order event is kept in the change feed; a cursor from before is answered 410 4124.
    event_retention_seconds: int = 30 * 86400
    # How long a busy, locked or unreachable database is waited for and retried before a 503.
    db_busy_timeout_seconds: float = 5.0
    # How long SIGTERM waits for in-flight requests.
    shutdown_timeout_seconds: float = 30.0
    # How long a request's body may take to arrive in full before it is refused with 408.
    body_timeout_seconds: float = 30.0
    # Requests one process serves at once (partner API and tokens); each may hold a body of up to
    # max_body_bytes in memory while it arrives, so this bounds what a flood of slow uploads can take. One
    # more is answered 503 before its body is read, and its connection closed.
    max_requests_in_flight: int = 1024
    # Each partner's token bucket (unless `partners set-rate-limit` overrides it): refilled at this many
    # requests per second, holding at most `rate_limit_burst`. 0 turns rate limiting off (behind a proxy that
    # limits already): no partner is limited, no answer carries the RateLimit headers.
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 100
    # Webhooks (`order-gateway webhooks add`): an attempt is acknowledged by a 2xx within the timeout; a failed
    # one is retried after each delay of the schedule in turn (seconds), then given up.
    webhook_timeout_seconds: float = 10.0
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    # Targets must be https and resolve to public addresses; these let tests and private networks through.
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # Deliveries in flight in one process, and to one webhook from one process: a slow endpoint holds at most
    # its own share.
    webhook_concurrency: int = 32
    webhook_endpoint_concurrency: int = 4
    # How often a process looks for deliveries that other processes' writes made due (its own wake it at once).
    webhook_poll_seconds: float = 1.0
    # The key that encrypts webhook secrets at rest; empty means "generate one once and keep it in the database".
    webhook_secret_key: str = ""

    def __post_init__(self) -> None:
        for name, ok, why in self._rules():
            _check(ok, name, self._shown(name), why)

    def _shown(self, name: str) -> Any:
        """A setting's value as an error message may quote it: never a secret, nor a database's password."""
        if name in SECRET_SETTINGS:
            return "(hidden)"
        return redacted(self.database_url) if name == "database_url" else getattr(self, name)

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """The retry schedule, in seconds: attempt n + 1 comes this long after attempt n failed."""
        return _delays(self.webhook_retry_schedule)

    def _rules(self) -> list[tuple[str, bool, str]]:
        """(setting, holds, what it must be): every rule a value must meet for the gateway to run."""
        return [
            ("port", 0 <= self.port <= 65535, "must be between 0 and 65535"),
            ("log_format", self.log_format in LOG_FORMATS, f"must be one of {', '.join(LOG_FORMATS)}"),
            ("token_ttl_seconds", self.token_ttl_seconds >= MIN_TOKEN_TTL_SECONDS,
             f"must be at least {MIN_TOKEN_TTL_SECONDS}"),
            ("jwt_secret", not self.jwt_secret or len(self.jwt_secret) >= MIN_SIGNING_KEY_CHARS,
             f"must be at least {MIN_SIGNING_KEY_CHARS} characters"),
            ("token_leeway_seconds", 0 <= self.token_leeway_seconds <= 60, "must be 0..60"),
            ("credential_cache_seconds", self.credential_cache_seconds >= 0, "must be >= 0"),
            ("db_pool_min_size", self.db_pool_min_size >= 0, "must be >= 0"),
            ("db_pool_max_size", self.db_pool_max_size >= max(1, self.db_pool_min_size),
             "must be at least 1 and at least db_pool_min_size"),
            ("max_body_bytes", self.max_body_bytes >= 1024, "must be at least 1024"),
            ("history_cache_bytes", self.history_cache_bytes >= 0, "must be >= 0"),
            ("idempotency_retention_seconds", self.idempotency_retention_seconds >= 60, "must be at least 60"),
            ("idempotency_purge_interval_seconds", self.idempotency_purge_interval_seconds > 0, "must be > 0"),
            ("event_retention_seconds", self.event_retention_seconds >= 60, "must be at least 60"),
            ("shutdown_timeout_seconds", self.shutdown_timeout_seconds >= 0, "must be >= 0"),
            ("db_busy_timeout_seconds", 0 <= self.db_busy_timeout_seconds <= 60, "must be 0..60"),
            ("body_timeout_seconds", self.body_timeout_seconds > 0, "must be > 0"),
            ("max_requests_in_flight", self.max_requests_in_flight >= 1, "must be at least 1"),
            ("rate_limit_per_second",
             self.rate_limit_per_second == 0
             or MIN_RATE_PER_SECOND <= self.rate_limit_per_second <= MAX_RATE_PER_SECOND,
             f"must be 0 (off) or a number from {MIN_RATE_PER_SECOND} to {MAX_RATE_PER_SECOND:,.0f}"),
            ("rate_limit_burst", 1 <= self.rate_limit_burst <= MAX_BURST, f"must be 1 to {MAX_BURST:,}"),
            ("webhook_timeout_seconds", 0 < self.webhook_timeout_seconds <= 60, "must be more than 0, at most 60"),
            ("webhook_retry_schedule", _schedule_ok(self.webhook_retry_schedule),
             f"must be at most {MAX_RETRIES} comma-separated delays in seconds, each more than 0 and at most "
             f"{MAX_RETRY_DELAY_SECONDS:,} (30 days) ({NO_RETRIES!r}: no retries)"),
            ("webhook_concurrency", self.webhook_concurrency >= 1, "must be at least 1"),
            ("webhook_endpoint_concurrency", self.webhook_endpoint_concurrency >= 1, "must be at least 1"),
            ("webhook_poll_seconds", 0 < self.webhook_poll_seconds <= 60, "must be more than 0, at most 60"),
            ("webhook_secret_key", not self.webhook_secret_key or len(self.webhook_secret_key) >= MIN_SIGNING_KEY_CHARS,
             f"must be at least {MIN_SIGNING_KEY_CHARS} characters"),
            ("database_url", self.database_url.startswith(("sqlite://", "postgresql://", "postgres://"))
             and _parses(self.database_url), "must start with sqlite:/// or postgresql://, with a valid host and port"),
        ]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from GATEWAY_* variables; explicit overrides (the command line) win."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _convert(field, raw)
            override = overrides.get(field.name)
            if override is not None:
                values[field.name] = _convert(field, override) if isinstance(override, str) else override
        return cls(**values)

    @classmethod
    def fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls))

    @classmethod
    def names(cls) -> list[str]:
        return [ENV_PREFIX + f.name.upper() for f in dataclasses.fields(cls)]


def _convert(field: dataclasses.Field[Any], raw: str) -> Any:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _boolean(raw)
    except ValueError:
        expected = "true or false" if kind == "bool" else "a number"
        raise SettingsError(f"setting {field.name}={raw!r}: not {expected} ({ENV_PREFIX}{field.name.upper()})") from None
    return raw


# Query parameters of a database URL that hold a secret (libpq's and asyncpg's names, which drivers read
# percent-decoded: pass%77ord is password).
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
_QUERY_PAIR = re.compile(r"(?<=[?&;])([^=&;#]*)=([^&;#]*)")


def _parses(url: str) -> bool:
    """Whether each host of the URL (libpq's `host1:5432,host2:5433` lists several) has a valid port, and
    a bracketed IPv6 address its closing bracket."""
    try:
        hosts = urlsplit(url).netloc.rpartition("@")[2]
        for host in hosts.split(","):
            urlsplit(f"//{host}").port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return True


def redacted(url: str) -> str:
    """A database URL fit for a message: its password replaced, in the user part or the query; the rest
    exactly as given. The user part ends at the URL's last `@`, so that a password holding a `/`, `?`, `#`
    or `@` (which a URL should percent-encode, and people do not) is replaced whole too; an `@` in the
    query hides more than the password, never less."""
    scheme, separator, rest = url.partition("://")
    user_part, at, hosts = rest.rpartition("@")
    if separator and at and scheme != "sqlite":  # a SQLite URL is a path, which may hold an `@`
        user, colon, _ = user_part.partition(":")
        url = f"{scheme}://{user}{':***' if colon else ''}@{hosts}"

    def pair(found: re.Match[str]) -> str:
        secret = unquote(found[1]).lower() in _SECRET_PARAMETERS
        return f"{found[1]}=***" if secret else found[0]

    return _QUERY_PAIR.sub(pair, url)


def _boolean(raw: str) -> bool:
    word = raw.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(word)
    return word in TRUE_WORDS


NO_RETRIES = "none"  # an empty environment variable counts as unset, like every other
MAX_RETRIES = 100
MAX_RETRY_DELAY_SECONDS = 30 * 86400  # the events' default retention: a later attempt has nothing left to send


def _delays(schedule: str) -> tuple[float, ...]:
    if schedule.strip().lower() == NO_RETRIES:
        return ()
    return tuple(float(part) for part in schedule.split(","))  # an empty part is no number: a ValueError


def _schedule_ok(schedule: str) -> bool:
    try:
        delays = _delays(schedule)
    except ValueError:
        return False
    return len(delays) <= MAX_RETRIES and all(0 < delay <= MAX_RETRY_DELAY_SECONDS for delay in delays)


def _check(ok: bool, name: str, value: Any, why: str) -> None:
    if not ok:
        raise SettingsError(f"setting {name}={value!r}: {why}")
