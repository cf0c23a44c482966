"""Embedded SQLite backend (aiosqlite): WAL, foreign keys, schema migrated on open.

Two connections: one for reads (autocommit; WAL gives each statement a committed snapshot) and one for
writes, whose transactions are serialized by an asyncio lock so that no other coroutine's statement can
slip into an open transaction. Other processes (the CLI while a server runs) wait on `busy_timeout`; a
SQLite database has one writer at a time, so named locks have nothing left to do.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.storage.sql import Db, SqlStorage

BUSY_TIMEOUT_MS = 10_000

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE credentials (
        key_hash TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        fingerprint TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created INTEGER NOT NULL,
        revoked INTEGER
    );
    CREATE INDEX credentials_partner ON credentials(partner_id);
    CREATE TABLE resellers (
        reseller_id TEXT PRIMARY KEY,
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        name TEXT NOT NULL
    );
    CREATE INDEX resellers_partner ON resellers(partner_id);
    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        company_name TEXT NOT NULL,
        coterm_date TEXT,
        version INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX customers_reseller ON customers(reseller_id);
    CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        reseller_id TEXT NOT NULL REFERENCES resellers(reseller_id),
        order_type TEXT NOT NULL,
        status TEXT NOT NULL,
        created INTEGER NOT NULL,
        external_reference_id TEXT NOT NULL,
        reference_order_id TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        source TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX orders_customer_created ON orders(customer_id, created DESC, order_id DESC);
    CREATE INDEX orders_reseller ON orders(reseller_id);
    CREATE INDEX orders_reference ON orders(reference_order_id) WHERE reference_order_id != '';
    CREATE TABLE line_items (
        order_id TEXT NOT NULL REFERENCES orders(order_id) ON DELETE CASCADE,
        ext_line_item_number INTEGER NOT NULL,
        offer_id TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        subscription_id TEXT NOT NULL,
        status TEXT NOT NULL,
        currency_code TEXT NOT NULL,
        deployment_id TEXT,
        promotions TEXT,
        PRIMARY KEY (order_id, ext_line_item_number)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE idempotency (
        partner_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        location TEXT,
        created INTEGER NOT NULL,
        PRIMARY KEY (partner_id, key)
    );
    CREATE INDEX idempotency_request ON idempotency(partner_id, request_id);
    CREATE INDEX idempotency_created ON idempotency(created);
    """,
)


def database_path(url: str) -> str:
    """sqlite:///relative/path, sqlite:////absolute/path."""
    path = url.removeprefix("sqlite://")
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(f"not a SQLite file URL: {url!r} (use sqlite:///relative.db or sqlite:////abs.db)")
    return path[1:]


class SqliteDb:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._connection.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._connection.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, rows)

    async def lock(self, name: str) -> None:
        """Writers are already one at a time (BEGIN IMMEDIATE, and the write lock within a process)."""


class SqliteStorage(SqlStorage):
    def __init__(self, reader: aiosqlite.Connection, writer: aiosqlite.Connection) -> None:
        self._read_db = SqliteDb(reader)
        self._writer = writer
        self._write_db = SqliteDb(writer)
        self._write_lock = asyncio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[SqliteStorage]:
        path = database_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Fail here, in the caller's thread, when the file cannot be opened: aiosqlite's worker thread
        # would report the failure to an event loop that may be closing.
        sqlite3.connect(path).close()
        async with aiosqlite.connect(path, isolation_level=None) as writer:
            await _configure(writer)
            await _migrate(writer)
            async with aiosqlite.connect(path, isolation_level=None) as reader:
                await _configure(reader)
                yield cls(reader, writer)

    @property
    def _reader(self) -> Db:
        return self._read_db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Db]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._write_db
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")


async def _configure(db: aiosqlite.Connection) -> None:
    for pragma in (
        "PRAGMA journal_mode = WAL",
        # FULL: a commit is on disk before a 201 is sent, even if the machine loses power.
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    ):
        await db.execute(pragma)


async def _migrate(db: aiosqlite.Connection) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = list(await db.execute_fetchall("PRAGMA user_version"))[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")
