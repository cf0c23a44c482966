"""The change feed: GET /v3/order-events."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs, querystring_schema, response_schema

from gateway.keys import FEED, PARTNER_ID
from handlers.conditional import json_answer
from gateway.openapi_answers import PARTNER_CHECKS, error_answers
from schemas.events import EventPageSchema, FeedQuerySchema
from schemas.headers import IF_NONE_MATCH, NOT_MODIFIED, PARTNER_HEADERS, PARTNER_SECURITY

routes = web.RouteTableDef()


@docs(
    tags=["events"],
    parameters=[*PARTNER_HEADERS, IF_NONE_MATCH],
    security=PARTNER_SECURITY,
    summary="The partner's order events after a cursor, oldest first; follow links.next (or poll with it)",
    responses={304: NOT_MODIFIED},
)
@error_answers(*PARTNER_CHECKS, "1132", "4124")
@querystring_schema(FeedQuerySchema)
@response_schema(EventPageSchema, 200, description="A page of events, and the cursor to resume from")
@routes.get("/v3/order-events")
async def order_events(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    page = await feed.page(request[PARTNER_ID], feed.query(request.query, request.rel_url.raw_query_string))
    return json_answer(request, page)
