"""The change feed: GET /v3/order-events."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs, querystring_schema, response_schema

from gateway.keys import FEED, PARTNER_ID
from handlers.conditional import json_answer
from handlers.orders import AUTH_ERRORS
from schemas.common import ErrorSchema
from schemas.events import EventPageSchema, FeedQuerySchema
from schemas.headers import IF_NONE_MATCH, NOT_MODIFIED, PARTNER_HEADERS, PARTNER_SECURITY

routes = web.RouteTableDef()


@docs(
    tags=["events"],
    parameters=[*PARTNER_HEADERS, IF_NONE_MATCH],
    security=PARTNER_SECURITY,
    summary="The partner's order events after a cursor, oldest first; follow links.next (or poll with it)",
    responses={
        **AUTH_ERRORS,
        304: NOT_MODIFIED,
        410: {"schema": ErrorSchema, "description": "The cursor points before the oldest event kept (4124): "
                                                    "start again without a cursor"},
    },
)
@querystring_schema(FeedQuerySchema)
@response_schema(EventPageSchema, 200, description="A page of events, and the cursor to resume from")
@routes.get("/v3/order-events")
async def order_events(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    page = await feed.page(request[PARTNER_ID], feed.query(request.query))
    return json_answer(request, page)
