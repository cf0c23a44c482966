"""Partner order endpoints: history, details, placing and updating orders."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs, json_schema, querystring_schema, response_schema

from gateway import contract, order_writes
from gateway.errors import ApiError
from gateway.keys import CLAIM, HISTORY, JSON_BODY, PARTNER_ID, STORAGE
from gateway.openapi_answers import PARTNER_CHECKS, WRITE_CHECKS, error_answers
from gateway.stored_answers import respond
from handlers.conditional import json_answer
from schemas.headers import (
    IF_NONE_MATCH, NOT_MODIFIED, PARTNER_HEADERS, PARTNER_SECURITY, WRITE_KEY_EXAMPLES, partner_headers,
)
from schemas.history import HistoryQuerySchema
from schemas.order_requests import CreateOrderRequestSchema, UpdateOrderRequestSchema, WriteQuerySchema
from schemas.orders import CreatedOrderSchema, OrderPageSchema, OrderSchema

routes = web.RouteTableDef()

# What every partner operation shares in the documents: its tag, its headers and its credentials.
_PARTNER_OPERATION = {"tags": ["orders"], "parameters": PARTNER_HEADERS, "security": PARTNER_SECURITY}
# The GETs clients poll take If-None-Match and may answer 304.
_POLLED_OPERATION = {**_PARTNER_OPERATION, "parameters": [*PARTNER_HEADERS, IF_NONE_MATCH]}


@docs(
    **_POLLED_OPERATION,
    summary="A customer's order history, newest first",
    responses={304: NOT_MODIFIED},
)
@error_answers(*PARTNER_CHECKS, "1132", "1133", "1116")
@querystring_schema(HistoryQuerySchema)
@response_schema(OrderPageSchema, 200, description="One page of orders")
@routes.get("/v3/customers/{customerId}/orders")
async def order_history(request: web.Request) -> web.Response:
    query = request.app[HISTORY].query(request.rel_url.raw_query_string, request.query)
    page = await request.app[HISTORY].page(request[PARTNER_ID], request.match_info["customerId"], query)
    return json_answer(request, page)


@docs(
    **_POLLED_OPERATION,
    summary="One order of a customer",
    responses={304: NOT_MODIFIED},
)
@error_answers(*PARTNER_CHECKS, "1116", "2115")
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


# What the request alone is wrong about (stored and replayed), then what depends on stored orders (not stored).
_PLACE_CODES = (
    "1117", "1121", "1122", "1132", "2119", "2120", "2121", "2123", "2126", "2141",
    "2130", "2131", "2133", "2134", "1116", "2115",
)
_UPDATE_CODES = ("1117", "1121", "1122", "1132", "2126", "1116", "2115")
_WRITE_NOTES = {
    400: "The first problem found decides the code; every problem is listed in additionalDetails and "
         "invalidFields. Problems caused by the request alone are stored and replayed for the same "
         "X-Correlation-Id; not 4119, 4120, a body that is not a JSON object, nor the RETURN rules checked "
         "against stored orders (docs/errors.md says which codes are replayed)",
    409: "Retry after Retry-After seconds with the same X-Correlation-Id",
    503: "Nothing was stored: resend the same request with the same X-Correlation-Id",
}


@docs(
    **{**_PARTNER_OPERATION, "parameters": partner_headers(WRITE_KEY_EXAMPLES["place_order"])},
    summary="Place (NEW, RENEWAL, RETURN) or preview an order; safe to retry with the same X-Correlation-Id",
    responses={
        201: {"schema": CreatedOrderSchema, "description": "Placed: status 1002; Location points at the order"},
    },
)
@error_answers(*WRITE_CHECKS, *_PLACE_CODES, notes=_WRITE_NOTES)
@querystring_schema(WriteQuerySchema)
@json_schema(CreateOrderRequestSchema)
@response_schema(CreatedOrderSchema, 200, description="PREVIEW: the validated order, nothing stored")
@routes.post("/v3/customers/{customerId}/orders")
async def place_order(request: web.Request) -> web.Response:
    customer_id, claim, sent = request.match_info["customerId"], request[CLAIM], request.rel_url.raw_query_string
    storage = request.app[STORAGE]
    try:
        order_request = contract.order_request(request[JSON_BODY], customer_id, request.query, sent)
    except ApiError as refused:
        raise await order_writes.with_return_problems(storage, claim, customer_id, request[JSON_BODY], refused)
    if order_request.order_type == "PREVIEW":
        reply = await order_writes.keep_answer(storage, claim, order_writes.preview(customer_id, order_request, claim.now))
    else:
        reply = await order_writes.place(storage, claim, customer_id, order_request)
    return respond(request, reply.answer, reply.replayed)


@docs(
    **{**_PARTNER_OPERATION, "parameters": partner_headers(WRITE_KEY_EXAMPLES["update_order"])},
    summary="Change an order's externalReferenceId; safe to retry with the same X-Correlation-Id",
)
@error_answers(*WRITE_CHECKS, *_UPDATE_CODES, notes=_WRITE_NOTES)
@querystring_schema(WriteQuerySchema)
@json_schema(UpdateOrderRequestSchema)
@response_schema(OrderSchema, 200, description="The updated order")
@routes.patch("/v3/customers/{customerId}/orders/{orderId}")
async def update_order(request: web.Request) -> web.Response:
    sent = request.rel_url.raw_query_string
    update = contract.order_update(request[JSON_BODY], request.query, sent)
    reply = await order_writes.update_reference(
        request.app[STORAGE], request[CLAIM], request.match_info["customerId"], request.match_info["orderId"],
        update.external_reference_id,
    )
    return respond(request, reply.answer, reply.replayed)
