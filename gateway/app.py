"""The application factory: wiring only. No I/O, no environment, no logging setup happen here."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.auth_failures import FailedAuthentications
from gateway.credential_cache import CredentialCache
from gateway.feed import EventFeed
from gateway.history import HistoryService
from gateway.keys import API_DOCS, AUTH_FAILURES, CREDENTIALS, FEED, HISTORY, IN_FLIGHT, METRICS, RATE_LIMITER
from gateway.keys import CAPACITY, SETTINGS, STORAGE, TOKENS
from gateway.http_limits import Capacity
from gateway.metrics import Metrics
from gateway.openapi import API_TITLE, API_VERSION, Swagger2Spec, api_docs
from gateway.rate_limit import Limit, RateLimiter
from gateway.settings import Settings
from gateway.storage import Storage, StorageUnavailable, open_storage
from gateway.tokens import TokenService, new_signing_key
from gateway.webhook_delivery import DeliveryWorker
from gateway.webhooks import secret_box
from handlers import docs, events, health, orders, tokens
from middleware.auth import auth_middleware
from middleware.capacity import capacity_middleware
from middleware.correlation import correlation_middleware
from middleware.errors import error_middleware
from middleware.idempotency import idempotency_middleware
from middleware.rate_limit import rate_limit_middleware
from middleware.request_log import request_log_middleware
from schemas.headers import SECURITY_DEFINITIONS


async def signing_key(settings: Settings, storage: Storage) -> str:
    """The configured key, else the one generated once and kept in the database."""
    return settings.jwt_secret or await storage.signing_key(new_signing_key())


def token_service(settings: Settings, key: str) -> TokenService:
    return TokenService(key, settings.jwt_issuer, settings.token_ttl_seconds, settings.token_leeway_seconds)


async def _storage_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with open_storage(
        settings.database_url, settings.db_pool_min_size, settings.db_pool_max_size, settings.db_busy_timeout_seconds
    ) as storage:
        app[STORAGE] = storage
        key = await signing_key(settings, storage)
        app[TOKENS] = token_service(settings, key)
        app[FEED] = EventFeed(storage, await storage.cursor_key(new_signing_key()), former_key=key)
        app[CREDENTIALS] = CredentialCache(storage, settings.credential_cache_seconds)
        app[AUTH_FAILURES] = FailedAuthentications(storage)
        app[HISTORY] = HistoryService(storage, settings.history_cache_bytes)
        default_limit = Limit(settings.rate_limit_per_second, settings.rate_limit_burst)
        app[RATE_LIMITER] = RateLimiter(storage, default_limit, settings.credential_cache_seconds)
        worker = DeliveryWorker(storage, settings, await secret_box(settings, storage), app[METRICS])
        storage.on_write(worker.wake)
        background = [asyncio.create_task(_purge(storage, settings)), asyncio.create_task(worker.run())]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await worker.finish()


FIRST_PURGE_AFTER_SECONDS = 60.0


async def _purge(storage: Storage, settings: Settings) -> None:
    """Drops correlation-id answers and order events past their retention, now and then, for the life of
    the app."""
    log = structlog.get_logger("gateway.purge")
    # The first purge waits too: a process that starts and stops at once has nothing to gain from one.
    await asyncio.sleep(min(settings.idempotency_purge_interval_seconds, FIRST_PURGE_AFTER_SECONDS))
    while True:
        now = int(time.time())
        try:
            answers, events = await storage.purge(
                now - settings.idempotency_retention_seconds, now - settings.event_retention_seconds
            )
            if answers or events:
                log.info("purged", answers=answers, events=events)
        except StorageUnavailable as failure:  # retried at the next interval; serving goes on
            log.warning("purge_failed", reason=str(failure))
        except Exception:
            log.exception("purge_failed")
        await asyncio.sleep(settings.idempotency_purge_interval_seconds)


async def _publish_docs(app: web.Application) -> None:
    """on_startup: every route is added by now."""
    app[API_DOCS] = api_docs(app)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # First is outermost: the log sees every answer, the error layer shapes every failure, the process's
        # capacity and the credential and correlation checks run before anything that reads the request,
        # then the partner's rate limit; replay is innermost.
        middlewares=[
            request_log_middleware,
            error_middleware,
            capacity_middleware,
            auth_middleware,
            correlation_middleware,
            *([rate_limit_middleware] if settings.rate_limit_per_second > 0 else []),
            idempotency_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[IN_FLIGHT] = set()
    app[CAPACITY] = Capacity(settings.max_requests_in_flight)
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_storage_context)
    for module in (tokens, orders, events, health, docs):
        app.add_routes(module.routes)
    # The Swagger 2.0 document stays where it was; the UI at /api/docs (handlers.docs) renders OpenAPI 3.
    Swagger2Spec(
        "/api/docs/swagger.json",
        app,
        title=API_TITLE,
        version=API_VERSION,
        swagger_path=None,
        securityDefinitions=SECURITY_DEFINITIONS,
    )
    app.on_startup.append(_publish_docs)
    return app
