"""Reference servers for bench/history.py: the order-history page written the straightforward way.

    python bench/_refs.py {aiohttp|fastapi} DATABASE_PATH PORT

Both answer GET /v3/customers/{customerId}/orders?offset=&limit= from the gateway's own SQLite file, with
no authentication, no validation beyond int() of the paging numbers and no logging:

- one aiosqlite connection opened at start-up, reused by every request;
- SELECT COUNT(*) ... then SELECT body ... ORDER BY created DESC, order_id DESC LIMIT ? OFFSET ? (both
  served by the schema's index orders_customer_created), each with one `execute_fetchall` (one hop to
  aiosqlite's thread per statement, the cheapest aiosqlite call);
- the window is [0, now]: the benchmarked customer has no cotermDate, so its default window has no lower
  bound (these servers do not look the customer up);
- each stored body decoded with json.loads, the page encoded with json.dumps (standard library).

GET /healthz answers 200 once the database is open.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import aiosqlite

COUNT_SQL = "SELECT COUNT(*) FROM orders WHERE customer_id = ? AND created BETWEEN ? AND ?"
PAGE_SQL = (
    "SELECT body FROM orders WHERE customer_id = ? AND created BETWEEN ? AND ? "
    "ORDER BY created DESC, order_id DESC LIMIT ? OFFSET ?"
)
DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def _link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


def _uri(customer_id: str, offset: int, limit: int) -> str:
    return f"/v3/customers/{quote(customer_id, safe='')}/orders?{urlencode({'offset': offset, 'limit': limit})}"


async def page(db: aiosqlite.Connection, customer_id: str, offset: int, limit: int) -> str:
    limit = min(limit, MAX_LIMIT)
    window = (customer_id, 0, int(time.time()))
    ((total,),) = await db.execute_fetchall(COUNT_SQL, window)
    rows = await db.execute_fetchall(PAGE_SQL, (*window, limit, offset))
    items = [json.loads(body) for (body,) in rows]
    links = {"self": _link(_uri(customer_id, offset, limit))}
    if offset + limit < total:
        links["next"] = _link(_uri(customer_id, offset + limit, limit))
    if offset > 0:
        links["prev"] = _link(_uri(customer_id, max(0, offset - limit), limit))
    return json.dumps(
        {"totalCount": total, "count": len(items), "offset": offset, "limit": limit, "items": items, "links": links}
    )


def run_aiohttp(path: str, port: int) -> None:
    from aiohttp import web

    db_key: web.AppKey[aiosqlite.Connection] = web.AppKey("db")

    async def database(app: web.Application) -> AsyncIterator[None]:
        async with aiosqlite.connect(path) as db:
            app[db_key] = db
            yield

    async def history(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", 0))
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
        body = await page(request.app[db_key], request.match_info["customerId"], offset, limit)
        return web.Response(text=body, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.cleanup_ctx.append(database)
    app.router.add_get("/v3/customers/{customerId}/orders", history)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_fastapi(path: str, port: int) -> None:
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI, Response

    state: dict[str, aiosqlite.Connection] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiosqlite.connect(path) as db:
            state["db"] = db
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/v3/customers/{customer_id}/orders")
    async def history(customer_id: str, offset: int = 0, limit: int = DEFAULT_LIMIT) -> Response:
        body = await page(state["db"], customer_id, offset, limit)
        return Response(content=body, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("aiohttp", "fastapi"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, port = argv[0], argv[1], int(argv[2])
    (run_aiohttp if kind == "aiohttp" else run_fastapi)(path, port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
