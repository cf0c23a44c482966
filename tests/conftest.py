"""Shared fixtures: a fresh SQLite database per test, partners with credentials, data loaded through the
importer, and an HTTP client on the real application (every middleware on)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.credentials import IssuedCredential
from gateway.importer import import_file
from gateway.partners import create_partner
from gateway.settings import Settings
from gateway.storage import open_storage

TEST_SIGNING_KEY = "test-signing-key-" + "0123456789abcdef" * 4
# The tests of other rules send far more requests than a partner's default burst: their apps and server
# processes run with a limit they never reach. The rate-limit tests (test_rate_limits.py) set their own.
UNLIMITED: dict[str, Any] = {"rate_limit_per_second": 1e6, "rate_limit_burst": 1_000_000}
for _name, _value in UNLIMITED.items():
    os.environ.setdefault(f"GATEWAY_{_name.upper()}", str(_value))
_correlation = itertools.count(1)


# The PostgreSQL runs of every test need a server: .ci/run points this at the machine's own.
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "")
SKIP_POSTGRES = (
    "PostgreSQL backend not tested: set GATEWAY_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test "
    "(as .ci/run does) to run every storage test against PostgreSQL too"
)


def _in_thread(coroutine: Any) -> Any:
    """Runs set-up SQL on a private loop, leaving the test's own event loop alone."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _pg(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def raw_sql(db_url: str, *statements: str) -> None:
    """Runs statements on the test's database behind the gateway's back (to break it, say)."""
    if db_url.startswith("sqlite://"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
            for statement in statements:
                db.execute(statement)
    else:
        _in_thread(_pg(db_url, *statements))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/gateway.db"
        return
    if not POSTGRES_URL:
        pytest.skip(SKIP_POSTGRES)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    _in_thread(_pg(POSTGRES_URL, f'CREATE SCHEMA "{schema}"'))
    # asyncpg passes unknown URL parameters on as server settings: the test's sessions carry its schema's name,
    # so that none a test left behind (a process it killed, an app it did not close) can block the drop.
    yield f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}search_path={schema}&application_name={schema}"
    _in_thread(_pg(
        POSTGRES_URL,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'",
        f'DROP SCHEMA "{schema}" CASCADE',
    ))


@contextlib.asynccontextmanager
async def locked_elsewhere(db_url: str, table: str, sqlite_file_suffix: str = "") -> AsyncIterator[None]:
    """Another process's write lock until the block ends: on PostgreSQL, on `table`; on SQLite, on the
    database file (with `sqlite_file_suffix`, the file beside it of that name: the rate-limit buckets')."""
    if db_url.startswith("sqlite://"):
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///") + sqlite_file_suffix, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.close()
        return
    import asyncpg

    connection = await asyncpg.connect(db_url)
    try:
        async with connection.transaction():
            await connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


def sqlite_only(db_url: str, why: str) -> None:
    if not db_url.startswith("sqlite://"):
        pytest.skip(why)


@pytest.fixture
def history_cache_bytes(request: pytest.FixtureRequest) -> int:
    """The history cache's budget: the default, or 0 (every page from SQL) in the second run of the modules
    marked `reads_history`."""
    return int(getattr(request, "param", Settings.history_cache_bytes))


# The modules that take longest, longest first (measured): `make test` hands whole modules to its processes
# in collection order, and these, run last, left one process working alone for a minute.
LONGEST_MODULES = ("test_history", "test_database_faults", "test_webhooks", "test_http_refusals",
                   "test_feed_concurrency", "test_webhook_guarantees", "test_cli", "test_rate_limits")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.stem
        return LONGEST_MODULES.index(module) if module in LONGEST_MODULES else len(LONGEST_MODULES)

    items.sort(key=rank)  # stable: the other modules keep their order


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "history_cache_bytes" in metafunc.fixturenames and metafunc.definition.get_closest_marker("reads_history"):
        metafunc.parametrize(
            "history_cache_bytes", [Settings.history_cache_bytes, 0], indirect=True, ids=["cached", "uncached"]
        )


@pytest.fixture
def settings(db_url: str, history_cache_bytes: int) -> Settings:
    return Settings(**UNLIMITED, database_url=db_url, jwt_secret=TEST_SIGNING_KEY, credential_cache_seconds=0,
                    history_cache_bytes=history_cache_bytes)


@pytest.fixture
def make_partner(db_url: str) -> Callable[..., Awaitable[IssuedCredential]]:
    async def make(partner_id: str, name: str = "Partner") -> IssuedCredential:
        async with open_storage(db_url) as storage:
            return await create_partner(storage, name, partner_id)

    return make


@pytest.fixture
def load(db_url: str) -> Callable[[Iterable[dict[str, Any]]], Awaitable[None]]:
    """Loads records (dicts of the import format) through the importer."""

    async def run(records: Iterable[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(record) + b"\n" for record in records)
        async with open_storage(db_url) as storage:
            await import_file(storage, BytesIO(data))

    return run


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(settings))


async def bearer(client: TestClient, credential: IssuedCredential) -> str:
    response = await client.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": credential.api_key,
            "client_secret": credential.client_secret,
        },
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["access_token"])


async def partner_headers(client: TestClient, credential: IssuedCredential) -> dict[str, str]:
    """Headers of a well-formed partner request (a fresh correlation id each call)."""
    return {
        "X-Api-Key": credential.api_key,
        "Authorization": f"Bearer {await bearer(client, credential)}",
        "X-Correlation-Id": f"corr-{next(_correlation)}",
    }


def order_record(
    order_id: str,
    customer_id: str,
    created: str,
    *,
    status: str = "1000",
    order_type: str = "NEW",
    offers: Iterable[str] = ("OFFER-A",),
    subscriptions: Iterable[str] | None = None,
    reseller_id: str | None = None,
    external_reference_id: str = "",
    reference_order_id: str = "",
) -> dict[str, Any]:
    subs = list(subscriptions) if subscriptions is not None else None
    lines = []
    for number, offer in enumerate(offers, start=1):
        line: dict[str, Any] = {"extLineItemNumber": number, "offerId": offer, "quantity": number, "currencyCode": "USD"}
        if subs is not None and number <= len(subs):
            line["subscriptionId"] = subs[number - 1]
        lines.append(line)
    record: dict[str, Any] = {
        "type": "order",
        "orderId": order_id,
        "customerId": customer_id,
        "orderType": order_type,
        "status": status,
        "creationDate": created,
        "currencyCode": "USD",
        "externalReferenceId": external_reference_id,
        "referenceOrderId": reference_order_id,
        "lineItems": lines,
    }
    if reseller_id is not None:
        record["resellerId"] = reseller_id
    return record


@pytest.fixture
async def partners(make_partner: Callable[..., Awaitable[IssuedCredential]],
                   load: Callable[[Iterable[dict[str, Any]]], Awaitable[None]]) -> dict[str, IssuedCredential]:
    """P1 (reseller R1, customer C1) and P2 (reseller R2, customer C2), with no order yet."""
    first, second = await make_partner("P1"), await make_partner("P2")
    await load([reseller_record("R1", "P1"), reseller_record("R2", "P2"),
                customer_record("C1", "R1"), customer_record("C2", "R2")])
    return {"P1": first, "P2": second}


def reseller_record(reseller_id: str, partner_id: str) -> dict[str, Any]:
    return {"type": "reseller", "resellerId": reseller_id, "partnerId": partner_id, "name": reseller_id}


def customer_record(customer_id: str, reseller_id: str, coterm: str | None = None) -> dict[str, Any]:
    return {
        "type": "customer",
        "customerId": customer_id,
        "resellerId": reseller_id,
        "companyName": customer_id,
        "cotermDate": coterm,
    }


ROOT = Path(__file__).resolve().parent.parent


def cli(db_url: str, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs `order-gateway --database URL ARGS...` as a separate process."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--database", db_url, *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(db_url: str, *args: str, log_path: Path | None = None) -> Iterator[str]:
    """A gateway serving on a free loopback port; yields its base URL; stopped with SIGTERM."""
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--database", db_url, "serve", "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert proc.poll() is None, "server exited early"
            time.sleep(0.05)
        else:
            raise AssertionError("server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log_path:
            log.close()  # type: ignore[union-attr]


def seed_with_cli(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Partner P1 (created by the CLI, whose JSON is returned) with reseller R1 and customer C1."""
    partner: dict[str, str] = orjson.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    data = tmp_path / "seed.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in [reseller_record("R1", "P1"), customer_record("C1", "R1")]))
    cli(db_url, "import", str(data))
    return partner


async def process_headers(http: Any, partner: dict[str, str], key: str) -> dict[str, str]:
    """Partner headers for a gateway process: a token fetched from it, and the given correlation id."""
    form = {"grant_type": "client_credentials", "client_id": partner["apiKey"], "client_secret": partner["clientSecret"]}
    async with http.post("/ims/token/v3", data=form) as response:
        answer = await response.json()
        assert response.status == 200, answer
        token = answer["access_token"]
    return {"X-Api-Key": partner["apiKey"], "Authorization": f"Bearer {token}", "X-Correlation-Id": key}
