"""Partner order endpoints: history and details."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs, querystring_schema, response_schema

from gateway.errors import ApiError
from gateway.history import HistoryQuery
from gateway.keys import HISTORY, PARTNER_ID, STORAGE
from schemas.common import ErrorSchema
from schemas.headers import PARTNER_HEADERS
from schemas.orders import HistoryQuerySchema, OrderPageSchema, OrderSchema

routes = web.RouteTableDef()

_AUTH_ERRORS = {
    400: {"schema": ErrorSchema, "description": "Invalid X-Correlation-Id (4119) or query (1132, 1133)"},
    401: {"schema": ErrorSchema, "description": "Missing (4117) or invalid (4116) bearer token"},
    403: {"schema": ErrorSchema, "description": "Missing, unknown or revoked API key (4115)"},
    500: {"schema": ErrorSchema, "description": "Unexpected error (1124)"},
}


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


@docs(
    tags=["orders"],
    summary="A customer's order history, newest first",
    parameters=PARTNER_HEADERS,
    responses={
        **_AUTH_ERRORS,
        404: {"schema": ErrorSchema, "description": "Customer not found (1116)"},
    },
)
@querystring_schema(HistoryQuerySchema)
@response_schema(OrderPageSchema, 200, description="One page of orders")
@routes.get("/v3/customers/{customerId}/orders")
async def order_history(request: web.Request) -> web.Response:
    query = HistoryQuery.parse(request.query)
    page = await request.app[HISTORY].page(request[PARTNER_ID], request.match_info["customerId"], query)
    return _json(page)


@docs(
    tags=["orders"],
    summary="One order of a customer",
    parameters=PARTNER_HEADERS,
    responses={
        **_AUTH_ERRORS,
        404: {"schema": ErrorSchema, "description": "Customer (1116) or order (2115) not found"},
    },
)
@response_schema(OrderSchema, 200, description="The order")
@routes.get("/v3/customers/{customerId}/orders/{orderId}")
async def order_details(request: web.Request) -> web.Response:
    customer_id, order_id = request.match_info["customerId"], request.match_info["orderId"]
    partner_id = request[PARTNER_ID]
    storage = request.app[STORAGE]
    body = await storage.order_body(customer_id, order_id, partner_id)
    if body is None:
        visible = await storage.customer_scope(customer_id, partner_id)
        raise ApiError("2115" if visible else "1116")
    return _json(body)
