"""JSON Lines import: every line validated, everything written in one transaction or nothing."""
from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Iterator
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


class ImportUnreadable(Exception):
    """The file failed to read midway (an I/O error); nothing was written. Its text is the system's reason."""


def _lines_read(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines; a read that fails is the file's failure, not one of the database the import writes to."""
    read = iter(lines)
    while True:
        try:
            line = next(read)
        except StopIteration:
            return
        except OSError as failure:
            raise ImportUnreadable(failure.strerror or type(failure).__name__) from None
        yield line


def parse_records(lines: Iterable[bytes], on_line: Callable[[int], None] | None = None,
                  ) -> Iterator[tuple[int, ImportRecord]]:
    """Records of the file, in order; ImportLineError for the first bad line, and for the second of two
    records of one id: the file's version of a record must be one, or every import would write both (two
    that differ, one after the other, and an event for each: re-importing the file would change it again).
    Ids are remembered by a 64-bit hash (SipHash, keyed per process): about 70 bytes each."""
    seen: set[int] = set()
    for line_no, raw in enumerate(_lines_read(lines), start=1):
        if on_line is not None:
            on_line(len(raw))
        if line_no == 1:
            raw = raw.removeprefix(UTF8_BOM)  # some editors start a UTF-8 file with one
        if not raw.strip():
            continue
        record = parse_record(line_no, raw)
        kind, record_id = _identity(record)
        key = hash((kind, record_id))
        if key in seen:
            raise ImportLineError(line_no, f"{kind} {_shown(record_id)} is in the file more than once")
        seen.add(key)
        yield line_no, record


def _identity(record: ImportRecord) -> tuple[str, str]:
    if isinstance(record, Reseller):
        return "reseller", record.reseller_id
    if isinstance(record, Customer):
        return "customer", record.customer_id
    return "order", record.order_id


def parse_record(line_no: int, raw: bytes) -> ImportRecord:
    data = _json_object(line_no, raw)
    if b"\\u0000" in raw:  # JSON's only spelling of NUL; no stored text may hold one
        raise ImportLineError(line_no, "NUL characters are not allowed")
    kind = data.get("type")
    schema = _SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or not isinstance(kind, str):
        raise ImportLineError(line_no, f"type must be one of {', '.join(_SCHEMAS)}, not {_shown(kind)}")
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


MAX_SHOWN_CHARS = 80  # of a value of the file quoted in an error line


def _shown(value: Any) -> str:
    """A value of the file as an error line quotes it: escaped (a terminal's control sequences, a line break,
    stay text) and cut short (a 5 MB value is not copied into the line)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _field_name(key: Any) -> str:
    """The schema's own names as they are; an unknown member's name as the file has it, shown safely."""
    plain = isinstance(key, int) or (isinstance(key, str) and key.isprintable() and len(key) <= MAX_SHOWN_CHARS)
    return str(key) if plain else _shown(key)


def _describe(messages: Any, prefix: str = "") -> str:
    parts = []
    for key, value in messages.items():
        name = f"{prefix}.{_field_name(key)}" if prefix else _field_name(key)
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
