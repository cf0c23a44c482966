"""Partner order endpoints: history, details, placing and updating orders."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs, json_schema, querystring_schema, response_schema

from gateway import contract, order_writes
from gateway.errors import ApiError
from gateway.stored_answers import respond
from gateway.keys import CLAIM, HISTORY, JSON_BODY, PARTNER_ID, STORAGE
from handlers.conditional import json_answer
from schemas.common import ErrorSchema
from schemas.headers import (
    CHALLENGE_HEADER,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    LOCATION_HEADER,
    PARTNER_HEADERS,
    PARTNER_SECURITY,
    RETRY_AFTER_HEADER,
)
from schemas.history import HistoryQuerySchema
from schemas.order_requests import CreateOrderRequestSchema, UpdateOrderRequestSchema, WriteQuerySchema
from schemas.orders import CreatedOrderSchema, OrderPageSchema, OrderSchema

routes = web.RouteTableDef()

# The answers every partner operation may give before its own (shared with handlers.events).
AUTH_ERRORS = {
    400: {"schema": ErrorSchema, "description": "Invalid X-Correlation-Id (4119) or query (1132, 1133)"},
    401: {"schema": ErrorSchema, "description": "Missing (4117) or invalid (4116) bearer token",
          "headers": {"WWW-Authenticate": CHALLENGE_HEADER}},
    403: {"schema": ErrorSchema, "description": "Missing, unknown or revoked API key (4115)"},
    414: {"schema": ErrorSchema, "description": "Request target over 8 KiB (414)"},
    429: {"schema": ErrorSchema, "description": "Over the partner's rate limit (4118); never stored for replay",
          "headers": {"Retry-After": RETRY_AFTER_HEADER}},
    500: {"schema": ErrorSchema, "description": "Unexpected error (1124)"},
}


# What every partner operation shares in the documents: its tag, its headers and its credentials.
_PARTNER_OPERATION = {"tags": ["orders"], "parameters": PARTNER_HEADERS, "security": PARTNER_SECURITY}
# The GETs clients poll take If-None-Match and may answer 304.
_POLLED_OPERATION = {**_PARTNER_OPERATION, "parameters": [*PARTNER_HEADERS, IF_NONE_MATCH]}


@docs(
    **_POLLED_OPERATION,
    summary="A customer's order history, newest first",
    responses={
        **AUTH_ERRORS,
        304: NOT_MODIFIED,
        404: {"schema": ErrorSchema, "description": "Customer not found (1116)"},
    },
)
@querystring_schema(HistoryQuerySchema)
@response_schema(OrderPageSchema, 200, description="One page of orders")
@routes.get("/v3/customers/{customerId}/orders")
async def order_history(request: web.Request) -> web.Response:
    query = request.app[HISTORY].query(request.query_string, request.query)
    page = await request.app[HISTORY].page(request[PARTNER_ID], request.match_info["customerId"], query)
    return json_answer(request, page)


@docs(
    **_POLLED_OPERATION,
    summary="One order of a customer",
    responses={
        **AUTH_ERRORS,
        304: NOT_MODIFIED,
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
    return json_answer(request, body)


_WRITE_ERRORS = {
    400: {"schema": ErrorSchema, "description": "Invalid request: 1117, 1121, 1122, 2119, 2120, 2121, 2123, 2126, "
          "2130, 2131, 2133, 2134, 2141; 4119 bad X-Correlation-Id; 4120 X-Request-Id already used"},
    401: AUTH_ERRORS[401],
    403: AUTH_ERRORS[403],
    404: {"schema": ErrorSchema, "description": "Customer (1116) or order (2115) not found"},
    409: {"schema": ErrorSchema, "description": "The same X-Correlation-Id is still executing (4122)",
          "headers": {"Retry-After": RETRY_AFTER_HEADER}},
    413: {"schema": ErrorSchema, "description": "Body too large (413)"},
    414: AUTH_ERRORS[414],
    422: {"schema": ErrorSchema, "description": "X-Correlation-Id already used for another request (4123)"},
    429: AUTH_ERRORS[429],
    500: AUTH_ERRORS[500],
}


@docs(
    **_PARTNER_OPERATION,
    summary="Place (NEW, RENEWAL, RETURN) or preview an order; safe to retry with the same X-Correlation-Id",
    responses={
        **_WRITE_ERRORS,
        201: {"schema": CreatedOrderSchema, "description": "Placed", "headers": {"Location": LOCATION_HEADER}},
    },
)
@querystring_schema(WriteQuerySchema)
@json_schema(CreateOrderRequestSchema)
@response_schema(CreatedOrderSchema, 200, description="PREVIEW: the validated order, nothing stored")
@routes.post("/v3/customers/{customerId}/orders")
async def place_order(request: web.Request) -> web.Response:
    customer_id, claim = request.match_info["customerId"], request[CLAIM]
    order_request = contract.order_request(request[JSON_BODY], customer_id, request.query)
    storage = request.app[STORAGE]
    if order_request.order_type == "PREVIEW":
        reply = await order_writes.keep_answer(storage, claim, order_writes.preview(customer_id, order_request, claim.now))
    else:
        reply = await order_writes.place(storage, claim, customer_id, order_request)
    return respond(request, reply.answer, reply.replayed)


@docs(
    **_PARTNER_OPERATION,
    summary="Change an order's externalReferenceId; safe to retry with the same X-Correlation-Id",
    responses=_WRITE_ERRORS,
)
@querystring_schema(WriteQuerySchema)
@json_schema(UpdateOrderRequestSchema)
@response_schema(OrderSchema, 200, description="The updated order")
@routes.patch("/v3/customers/{customerId}/orders/{orderId}")
async def update_order(request: web.Request) -> web.Response:
    update = contract.order_update(request[JSON_BODY], request.query)
    reply = await order_writes.update_reference(
        request.app[STORAGE], request[CLAIM], request.match_info["customerId"], request.match_info["orderId"],
        update.external_reference_id,
    )
    return respond(request, reply.answer, reply.replayed)
