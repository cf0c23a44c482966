"""Examples for the API documents: what a client sends and what it reads back, one named constant each.

Their ids are those of `serve --demo` (customer 9876543210, order 5120008000), so that "Try it out" on a
demo gateway reaches data. tests/test_openapi_examples.py checks each against the schema it illustrates, and
sends the request examples to a gateway: they must be accepted as they are.
"""
from __future__ import annotations

from typing import Any

CUSTOMER_ID = "9876543210"
ORDER_ID = "5120008000"
OFFER_ID = "80004567CA01A12"
_ORDER_URI = f"/v3/customers/{CUSTOMER_ID}/orders/{ORDER_ID}"


def _link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


# -- requests ---------------------------------------------------------------------------------------------------

NEW_ORDER = {
    "orderType": "NEW",
    "externalReferenceId": "PO-2041",
    "currencyCode": "USD",
    "lineItems": [{"extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 5}],
}
PREVIEW_ORDER = {**NEW_ORDER, "orderType": "PREVIEW"}
RENEWAL_ORDER = {
    "orderType": "RENEWAL",
    "currencyCode": "USD",
    "lineItems": [{"extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 5, "subscriptionId": "86756300"}],
}
RETURN_ORDER = {
    "orderType": "RETURN",
    "referenceOrderId": ORDER_ID,
    "currencyCode": "USD",
    "lineItems": [{"extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 1}],
}
ORDER_UPDATE = {"externalReferenceId": "PO-2041-B"}

# -- answers ----------------------------------------------------------------------------------------------------

ORDER = {
    "orderId": ORDER_ID,
    "customerId": CUSTOMER_ID,
    "externalReferenceId": "PO-700",
    "orderType": "NEW",
    "referenceOrderId": "",
    "currencyCode": "USD",
    "creationDate": "2026-03-02T09:15:27Z",
    "status": "1000",
    "source": "API",
    "lineItems": [{
        "extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 5, "subscriptionId": "86756300", "status": "1000",
        "currencyCode": "USD", "deploymentId": "12345", "promotions": [{"code": "SUMMER_SALE_123", "result": "SUCCESS"}],
    }],
    "links": {"self": _link(_ORDER_URI)},
}
UPDATED_ORDER = {**ORDER, **ORDER_UPDATE}
_PLACED_LINE = {"extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 5, "subscriptionId": "", "status": "1002",
                "currencyCode": "USD"}
PLACED_ORDER = {
    **NEW_ORDER,
    "orderId": "7891696768",
    "customerId": CUSTOMER_ID,
    "referenceOrderId": "",
    "creationDate": "2026-03-02T09:20:00Z",
    "status": "1002",
    "source": "API",
    "lineItems": [_PLACED_LINE],
    "links": {"self": _link(f"/v3/customers/{CUSTOMER_ID}/orders/7891696768")},
}
PREVIEWED_ORDER = {
    **PLACED_ORDER,
    "orderId": "",
    "orderType": "PREVIEW",
    "status": "",
    "lineItems": [{**_PLACED_LINE, "status": ""}],
    "links": {"self": _link(f"/v3/customers/{CUSTOMER_ID}/orders")},
}
_HISTORY_URI = f"/v3/customers/{CUSTOMER_ID}/orders?status=1000"
ORDER_PAGE = {
    "totalCount": 4,
    "count": 1,
    "offset": 1,
    "limit": 1,
    "items": [ORDER],
    "links": {
        "self": _link(f"{_HISTORY_URI}&offset=1&limit=1"),
        "next": _link(f"{_HISTORY_URI}&offset=2&limit=1"),
        "prev": _link(f"{_HISTORY_URI}&offset=0&limit=1"),
    },
}
_CURSOR, _NEXT_CURSOR = "AAAAAAAAAAGbUbL3Rmu3EKpAZvI", "AAAAAAAAAAKbUbL3Rmu3EKpAZvI"
EVENT_PAGE = {
    "count": 1,
    "limit": 25,
    "cursor": _NEXT_CURSOR,
    "items": [{
        "eventId": "d21571b3-375a-469a-bc54-9993fad8b53d",
        "type": "order.status_changed",
        "createdDate": "2026-03-02T10:00:00Z",
        "customerId": CUSTOMER_ID,
        "orderId": ORDER_ID,
        "status": "1000",
        "previousStatus": "1002",
        "order": ORDER,
    }],
    "links": {
        "self": _link(f"/v3/order-events?cursor={_CURSOR}&limit=25"),
        "next": _link(f"/v3/order-events?cursor={_NEXT_CURSOR}&limit=25"),
    },
}
_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZW1vLXBhcnRuZXIifQ.c2lnbmF0dXJl"
TOKEN_SECONDS = {"access_token": _TOKEN, "token_type": "bearer", "expires_in": 86400}
TOKEN_MILLISECONDS = {**TOKEN_SECONDS, "expires_in": 86400000}

# -- errors -----------------------------------------------------------------------------------------------------

# Bodies each refused with one code, by operation: their examples in the document are what the request
# contract answers them (gateway.openapi_answers), so they cannot drift from what the API sends.
_LINE: dict[str, Any] = {"extLineItemNumber": 1, "offerId": OFFER_ID, "quantity": 5}  # NEW_ORDER's line
REFUSED_BODIES: dict[str, dict[str, dict[str, Any]]] = {
    "place_order": {
        "1117": {**NEW_ORDER, "lineItems": [_LINE, {**_LINE, "extLineItemNumber": 2, "offerId": ""}]},
        "1121": {**NEW_ORDER, "colour": "red"},
        "1122": {key: value for key, value in NEW_ORDER.items() if key != "orderType"},
        "2119": {**NEW_ORDER, "lineItems": [{**_LINE, "extLineItemNumber": n} for n in range(1, 501)]},
        "2120": {**NEW_ORDER, "lineItems": [{**_LINE, "quantity": 0}]},
        "2121": {**NEW_ORDER, "lineItems": [_LINE, _LINE]},
        "2123": {**NEW_ORDER, "lineItems": [{**_LINE, "extLineItemNumber": 1000000}]},
        "2126": {**NEW_ORDER, "externalReferenceId": "PO-" + "0" * 40},
        "2141": {**NEW_ORDER, "lineItems": [{**_LINE, "flexDiscountCodes": ["SUMMER"]}]},
    },
    "update_order": {
        "1117": {"externalReferenceId": "PO<2041>"},
        "1121": {"externalReferenceId": "PO-2041-B", "status": "1000"},
        "1122": {},
        "2126": {"externalReferenceId": "PO-" + "0" * 40},
    },
}
# What an error example shows beyond its code and message where no body makes it: code ->
# (additionalDetails, invalidFields). The messages of the RETURN rules are those of gateway.order_writes.
ERROR_DETAILS: dict[str, tuple[list[str], list[str]]] = {
    "1132": (["limit: Must be an integer of at least 1."], ["limit"]),
    "1133": (["offset 30 is greater than totalCount 25"], ["offset"]),
    "2130": (["Line Item: 1, Reason: offerId differs from the referenced line"], ["offerId"]),
    "2131": (["Line Item: 3, Reason: no such line in the referenced order"], ["extLineItemNumber"]),
    "2133": ([], ["referenceOrderId"]),
    "2134": ([], ["referenceOrderId"]),
    "4119": ([], ["X-Correlation-Id"]),
}
# The message of an example where the API's answer says more than the code's own message.
ERROR_MESSAGES: dict[str, str] = {
    "1117": "The request could not be parsed",  # where no body is read: what the HTTP layer cannot parse
    "1132": "Invalid query parameters",
    "2130": "offerId differs from the referenced line",
    "2131": "no such line in the referenced order",
    "2133": "Everything of the referenced order has been returned",
    "2134": "The referenced order is older than 14 days",
    "4118": "Too many requests for this partner; retry in 2 s",
    "4119": "X-Correlation-Id is required: 1 to 255 characters, no control characters",
}
# RFC 6749 5.2 errors of the token endpoints: error -> a typical error_description.
OAUTH_ERRORS = {
    "invalid_request": "client_id differs from the Basic credentials",
    "unsupported_grant_type": "only client_credentials is supported",
    "invalid_client": "unknown client or wrong secret",
}
