"""Timed rounds for bench/history.py: a fixed number of keep-alive connections sending one request over and
over, bounded in requests and in seconds, measuring the server's CPU (and its PostgreSQL backends') and the
machine's, then their summary (median req/s, p50/p99 over all requests, CPU per request)."""
from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

import _data
from _servers import Server, client_cpu, process_cpu, system_busy


# -- the database's share ----------------------------------------------------------------------------------


class DbCpu:
    """CPU time of the PostgreSQL backend processes serving one server, found by their application_name."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> DbCpu:
        import asyncpg

        connection = await asyncpg.connect(_data.pg_url(url, application_name="bench-monitor"))
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = ""
        if comm != "postgres":
            await connection.close()
            raise RuntimeError("--postgres: the server must run on this machine (its backends' CPU is measured)")
        return cls(connection)

    async def snapshot(self, application_name: str) -> dict[int, float]:
        """CPU seconds per backend pid."""
        rows = await self._connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
        out: dict[int, float] = {}
        for (pid,) in rows:
            with contextlib.suppress(OSError, IndexError, ValueError):
                out[pid] = process_cpu(pid)
        return out

    async def close(self) -> None:
        await self._connection.close()


# -- load --------------------------------------------------------------------------------------------------


@dataclass
class Round:
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float  # share of one core used by this (load client) process
    others: float  # cores used by every other process meanwhile: noise from outside the benchmark
    db_cpu: float | None  # CPU seconds of the PostgreSQL backends serving the server; None: SQLite (in-process)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def run_round(
    session: aiohttp.ClientSession, server: Server, url: str, seconds: float, max_requests: int, concurrency: int,
    db_cpu: DbCpu | None = None, if_none_match: str | None = None,
) -> Round:
    """`if_none_match`: sent with every request, each of which must then be answered 304."""
    server.check_alive()
    latencies: list[float] = []
    failures: list[str] = []
    issued = 0
    db0 = await db_cpu.snapshot(server.db_app) if db_cpu and server.db_app else None
    cpu0, client0, busy0 = server.cpu_seconds(), client_cpu(), system_busy()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline and not failures:
            issued += 1
            sent = time.perf_counter()
            headers = server.headers() if if_none_match is None else {**server.headers(), "If-None-Match": if_none_match}
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != (200 if if_none_match is None else 304):
                    failures.append(f"{response.status} {body[:300]!r}")
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    server_cpu, client_used, busy = server.cpu_seconds() - cpu0, client_cpu() - client0, system_busy() - busy0
    db_used: float | None = None
    if db_cpu is not None and server.db_app and db0 is not None:
        # Backends opened during the round count from zero; one closed during the round is missed.
        db_used = sum(max(0.0, t - db0.get(pid, 0.0)) for pid, t in (await db_cpu.snapshot(server.db_app)).items())
    if failures:
        raise RuntimeError(f"{server.name}: {len(failures)} unexpected answer(s), first: {failures[0]}")
    others = max(0.0, busy - server_cpu - client_used - (db_used or 0.0)) / elapsed
    return Round(len(latencies), elapsed, latencies, server_cpu, client_used / elapsed, others, db_used)


# -- summary -----------------------------------------------------------------------------------------------


@dataclass
class Stats:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    db_ms: float | None
    requests: int
    client_cpu: float
    others: float


def summarize(rounds: list[Round]) -> Stats:
    latencies = sorted(x for r in rounds for x in r.latencies)
    total = len(latencies)
    return Stats(
        rate=statistics.median(r.rate for r in rounds),
        p50_ms=latencies[total // 2] * 1000,
        p99_ms=latencies[min(total - 1, int(total * 0.99))] * 1000,
        cpu_ms=sum(r.server_cpu for r in rounds) / total * 1000,
        db_ms=None if any(r.db_cpu is None for r in rounds) else sum(r.db_cpu or 0.0 for r in rounds) / total * 1000,
        requests=total,
        client_cpu=max(r.client_cpu for r in rounds),
        others=statistics.mean(r.others for r in rounds),
    )
