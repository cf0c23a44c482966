"""JSON Lines import: every line validated, everything written in one transaction or nothing."""
from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson
from marshmallow import Schema, ValidationError

from gateway.order_model import LineItem, Order, Promotion
from gateway.storage import Customer, ImportCounts, ImportRecord, Reseller, Storage
from schemas.bodies import TOO_DEEP, BodyProblem, text_too_deep, within_limits
from schemas.imports import CustomerRecordSchema, OrderRecordSchema, ResellerRecordSchema
from schemas.problems import shorter_than_their_limits

_SCHEMAS: dict[str, Schema] = {
    "reseller": ResellerRecordSchema(),
    "customer": CustomerRecordSchema(),
    "order": OrderRecordSchema(),
}


UTF8_BOM = b"\xef\xbb\xbf"


class ImportLineError(Exception):
    def __init__(self, line_no: int, reason: str) -> None:
        super().__init__(f"line {line_no}: {reason}")


def parse_records(lines: IO[bytes], on_line: Callable[[int], None] | None = None) -> Iterator[tuple[int, ImportRecord]]:
    """Records of the file, in order; ImportLineError for the first bad line."""
    for line_no, raw in enumerate(lines, start=1):
        if on_line is not None:
            on_line(len(raw))
        if line_no == 1:
            raw = raw.removeprefix(UTF8_BOM)  # some editors start a UTF-8 file with one
        if not raw.strip():
            continue
        yield line_no, parse_record(line_no, raw)


def parse_record(line_no: int, raw: bytes) -> ImportRecord:
    data = _json_object(line_no, raw)
    if b"\\u0000" in raw:  # JSON's only spelling of NUL; no stored text may hold one
        raise ImportLineError(line_no, "NUL characters are not allowed")
    kind = data.get("type")
    schema = _SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or not isinstance(kind, str):
        raise ImportLineError(line_no, f"type must be one of {', '.join(_SCHEMAS)}, not {kind!r}")
    if kind == "order":  # the string limits of a request body; externalReferenceId's is the schema's
        long = shorter_than_their_limits(data, {"externalReferenceId"})
        if long:
            raise ImportLineError(line_no, "; ".join(problem.reason for problem in long))
    try:
        record = schema.load(data)
    except ValidationError as exc:
        raise ImportLineError(line_no, _describe(exc.messages_dict)) from None
    return _BUILDERS[kind](record)


def _json_object(line_no: int, raw: bytes) -> dict[str, Any]:
    """The line's JSON object, nested at most MAX_DEPTH levels and with no member name twice in one object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ImportLineError(line_no, TOO_DEEP if text_too_deep(raw) else f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ImportLineError(line_no, "not a JSON object")
    try:
        within_limits(raw, data)
    except BodyProblem as problem:
        raise ImportLineError(line_no, problem.reason) from None
    return data


def _describe(messages: Any, prefix: str = "") -> str:
    parts = []
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            parts.append(_describe(value, name))
        else:
            parts.append(f"{name}: {' '.join(map(str, value))}")
    return "; ".join(parts)


def _reseller(data: dict[str, Any]) -> Reseller:
    return Reseller(data["resellerId"], data["partnerId"], data["name"])


def _customer(data: dict[str, Any]) -> Customer:
    coterm = data["cotermDate"]
    return Customer(data["customerId"], data["resellerId"], data["companyName"], coterm.isoformat() if coterm else None)


def _order(data: dict[str, Any]) -> Order:
    created = calendar.timegm(time.strptime(data["creationDate"][:19], "%Y-%m-%dT%H:%M:%S"))
    lines = tuple(
        LineItem(
            ext_line_item_number=line["extLineItemNumber"],
            offer_id=line["offerId"],
            quantity=line["quantity"],
            subscription_id=line["subscriptionId"],
            status=line["status"] or data["status"],
            currency_code=line["currencyCode"] if line["currencyCode"] is not None else data["currencyCode"],
            deployment_id=line["deploymentId"],
            promotions=None if line["promotions"] is None else tuple(Promotion(**p) for p in line["promotions"]),
        )
        for line in data["lineItems"]
    )
    return Order(
        order_id=data["orderId"],
        customer_id=data["customerId"],
        reseller_id=data["resellerId"],
        order_type=data["orderType"],
        status=data["status"],
        created=created,
        line_items=lines,
        external_reference_id=data["externalReferenceId"],
        reference_order_id=data["referenceOrderId"],
        currency_code=data["currencyCode"],
        source=data["source"],
    )


_BUILDERS: dict[str, Callable[[dict[str, Any]], ImportRecord]] = {
    "reseller": _reseller,
    "customer": _customer,
    "order": _order,
}


async def import_file(storage: Storage, lines: IO[bytes], on_line: Callable[[int], None] | None = None,
                      events: bool = True) -> ImportCounts:
    """`events=False`: no order event for what the file inserts or changes (history partners have seen)."""
    return await storage.import_records(parse_records(lines, on_line), events)
