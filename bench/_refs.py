"""Reference servers for bench/history.py: the order-history page written the straightforward way.

    python bench/_refs.py {aiohttp|fastapi} DATABASE PORT

DATABASE is the gateway's SQLite file (a path) or a postgresql:// URL (its search_path naming the schema).
Both frameworks answer GET /v3/customers/{customerId}/orders?offset=&limit= from it, with no
authentication, no validation beyond int() of the paging numbers and no logging:

- SQLite: one aiosqlite connection opened at start-up, reused by every request, each statement with one
  `execute_fetchall` (one hop to aiosqlite's thread per statement, the cheapest aiosqlite call);
  PostgreSQL: an asyncpg pool (1 to 10 connections, as the gateway's default), each statement with one
  pool.fetchval / pool.fetch (asyncpg prepares and caches the statements per connection);
- SELECT COUNT(*) ... then SELECT body ... ORDER BY created DESC, order_id DESC LIMIT OFFSET (both
  served by the schema's index orders_customer_page);
- the window is [0, now]: the benchmarked customer has no cotermDate, so its default window has no lower
  bound (these servers do not look the customer up);
- each stored body decoded with json.loads, the page encoded with json.dumps (standard library).

GET /healthz answers 200 once the database is open.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import aiosqlite

COUNT_SQL = "SELECT COUNT(*) FROM orders WHERE customer_id = ? AND created BETWEEN ? AND ?"
PAGE_SQL = (
    "SELECT body FROM orders WHERE customer_id = ? AND created BETWEEN ? AND ? "
    "ORDER BY created DESC, order_id DESC LIMIT ? OFFSET ?"
)
PG_COUNT_SQL = "SELECT COUNT(*) FROM orders WHERE customer_id = $1 AND created BETWEEN $2 AND $3"
PG_PAGE_SQL = (
    "SELECT body FROM orders WHERE customer_id = $1 AND created BETWEEN $2 AND $3 "
    "ORDER BY created DESC, order_id DESC LIMIT $4 OFFSET $5"
)
DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def _link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


def _uri(customer_id: str, offset: int, limit: int) -> str:
    return f"/v3/customers/{quote(customer_id, safe='')}/orders?{urlencode({'offset': offset, 'limit': limit})}"


def _render(customer_id: str, offset: int, limit: int, total: int, bodies: list[Any]) -> str:
    items = [json.loads(body) for body in bodies]
    links = {"self": _link(_uri(customer_id, offset, limit))}
    if offset + limit < total:
        links["next"] = _link(_uri(customer_id, offset + limit, limit))
    if offset > 0:
        links["prev"] = _link(_uri(customer_id, max(0, offset - limit), limit))
    return json.dumps(
        {"totalCount": total, "count": len(items), "offset": offset, "limit": limit, "items": items, "links": links}
    )


Page = Callable[[str, int, int], Awaitable[str]]


@asynccontextmanager
async def open_pages(database: str) -> AsyncIterator[Page]:
    """page(customer_id, offset, limit) -> JSON text, reading the SQLite file or the PostgreSQL URL."""
    if database.startswith(("postgresql://", "postgres://")):
        import asyncpg

        async with asyncpg.create_pool(database, min_size=1, max_size=10) as pool:

            async def pg_page(customer_id: str, offset: int, limit: int) -> str:
                limit = min(limit, MAX_LIMIT)
                window = (customer_id, 0, int(time.time()))
                total = await pool.fetchval(PG_COUNT_SQL, *window)
                rows = await pool.fetch(PG_PAGE_SQL, *window, limit, offset)
                return _render(customer_id, offset, limit, total, [row[0] for row in rows])

            yield pg_page
        return

    async with aiosqlite.connect(database) as db:

        async def sqlite_page(customer_id: str, offset: int, limit: int) -> str:
            limit = min(limit, MAX_LIMIT)
            window = (customer_id, 0, int(time.time()))
            ((total,),) = await db.execute_fetchall(COUNT_SQL, window)
            rows = await db.execute_fetchall(PAGE_SQL, (*window, limit, offset))
            return _render(customer_id, offset, limit, total, [body for (body,) in rows])

        yield sqlite_page


def run_aiohttp(database: str, port: int) -> None:
    from aiohttp import web

    page_key: web.AppKey[Page] = web.AppKey("page")

    async def open_database(app: web.Application) -> AsyncIterator[None]:
        async with open_pages(database) as page:
            app[page_key] = page
            yield

    async def history(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", 0))
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
        body = await request.app[page_key](request.match_info["customerId"], offset, limit)
        return web.Response(text=body, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.cleanup_ctx.append(open_database)
    app.router.add_get("/v3/customers/{customerId}/orders", history)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_fastapi(database: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI, Response

    state: dict[str, Page] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_pages(database) as page:
            state["page"] = page
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/v3/customers/{customer_id}/orders")
    async def history(customer_id: str, offset: int = 0, limit: int = DEFAULT_LIMIT) -> Response:
        body = await state["page"](customer_id, offset, limit)
        return Response(content=body, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("aiohttp", "fastapi"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, database, port = argv[0], argv[1], int(argv[2])
    (run_aiohttp if kind == "aiohttp" else run_fastapi)(database, port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
