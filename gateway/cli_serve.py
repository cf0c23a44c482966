"""`order-gateway serve`: the API, and with `--demo` the demo data and a curl that works."""
from __future__ import annotations

import shlex

import orjson
from aiohttp import web

from gateway.app import create_app, signing_key, token_service
from gateway.demo import DEMO_CUSTOMER, load_demo
from gateway.http_server import serve_app
from gateway.keys import SETTINGS, STORAGE
from gateway.settings import Settings


def serve(settings: Settings, demo: bool = False) -> int:
    app = create_app(settings)
    if demo:
        app.on_startup.append(_announce_demo)
    serve_app(app, settings)
    return 0


async def _announce_demo(app: web.Application) -> None:
    settings, storage = app[SETTINGS], app[STORAGE]
    credential = await load_demo(storage)
    token = token_service(settings, await signing_key(settings, storage)).issue(credential.partner_id, credential.api_key)
    url = f"http://{settings.host}:{settings.port}/v3/customers/{DEMO_CUSTOMER}/orders?limit=5"
    curl = " ".join(
        [
            "curl -s",
            f"-H {shlex.quote('X-Api-Key: ' + credential.api_key)}",
            f"-H {shlex.quote('Authorization: Bearer ' + token)}",
            "-H 'X-Correlation-Id: demo-1'",
            shlex.quote(url),
        ]
    )
    print(f"Demo data loaded. Partner {credential.partner_id}: API key and client secret (shown once):", flush=True)
    print(orjson.dumps(credential.as_json()).decode(), flush=True)
    print(f"Try:\n{curl}\n", flush=True)
