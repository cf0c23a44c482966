"""The query of GET /v3/customers/{customerId}/orders, and the HistoryQuery its schema loads."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import Any, Protocol

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema
from multidict import MultiMapping

from schemas.enums import STATUSES, STORED_ORDER_TYPES
from schemas.problems import CONFLICT, MAX_STRING, SENT_TWICE, Problem

MAX_LIMIT = 100  # the partner API caps pages at 100 orders
DEFAULT_LIMIT = 25
MIN_LIMIT = 1
MIN_OFFSET = 0
PAGING = ("offset", "limit")  # replaced by each page's own in its links
# ASCII digits only: `\d` alone would take any script's digits, and int() reads them.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# Zulu only: "+00:00", other offsets and zone-less timestamps are refused, as the partner API does.
_ZULU = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)
_DOCUMENTED_INSTANT = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z)?$"  # _DATE or _ZULU, for the documents


class IndexedOrder(Protocol):
    """What the history filters read of an order (gateway.storage.IndexRow has it)."""

    @property
    def order_type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reseller_id(self) -> str: ...
    @property
    def reference_order_id(self) -> str: ...
    @property
    def external_reference_id(self) -> str: ...
    @property
    def offer_ids(self) -> Collection[str]: ...
    @property
    def subscription_ids(self) -> Collection[str]: ...


@dataclasses.dataclass(frozen=True)
class HistoryQuery:
    order_types: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    offer_ids: frozenset[str] = frozenset()
    subscription_ids: frozenset[str] = frozenset()
    reference_order_id: str | None = None
    external_reference_id: str | None = None
    reseller_id: str | None = None
    start: Fraction | None = None
    end: Fraction | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    # The client's parameters except paging, each (name, value) once, in the order sent: echoed in links.
    echo: tuple[tuple[str, str], ...] = ()

    def tests(self) -> list[Callable[[IndexedOrder], bool]]:
        """A test per non-date filter (empty when there are none): an order matches when it passes them all.
        Each is a single comparison, with its values bound, so that running it over a customer's whole index
        (`filter`, test after test) stays cheap."""
        tests: list[Callable[[IndexedOrder], bool]] = []
        if order_types := self.order_types:
            tests.append(lambda row: row.order_type in order_types)
        if statuses := self.statuses:
            tests.append(lambda row: row.status in statuses)
        if offer_ids := self.offer_ids:
            tests.append(lambda row: not offer_ids.isdisjoint(row.offer_ids))
        if subscription_ids := self.subscription_ids:
            tests.append(lambda row: not subscription_ids.isdisjoint(row.subscription_ids))
        if (reference_order_id := self.reference_order_id) is not None:
            tests.append(lambda row: row.reference_order_id == reference_order_id)
        if (external_reference_id := self.external_reference_id) is not None:
            tests.append(lambda row: row.external_reference_id == external_reference_id)
        if (reseller_id := self.reseller_id) is not None:
            tests.append(lambda row: row.reseller_id == reseller_id)
        return tests


class Instant(fields.Field):
    """`2019-05-02` (midnight UTC) or `2019-05-02T22:49:54Z`, as exact seconds since the epoch (a Fraction:
    every digit counts, however many are sent, up to the 64 characters a query value may have)."""

    default_error_messages = {"invalid": "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC, Zulu)."}

    def __init__(self, **kwargs: Any) -> None:
        # A plain Field has no type of its own in the API documents: say what the query string carries.
        documented = {"type": "string", "pattern": _DOCUMENTED_INSTANT}
        super().__init__(**{**kwargs, "metadata": {**documented, **kwargs.get("metadata", {})}})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Fraction:
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise self.make_error("invalid")
        try:
            if _DATE.fullmatch(value):
                midnight = date.fromisoformat(value)
                moment = datetime(midnight.year, midnight.month, midnight.day, tzinfo=timezone.utc)
                return Fraction(int(moment.timestamp()))
            match = _ZULU.fullmatch(value)
            if match:
                year, month, day, hour, minute, second = (int(p) for p in match.groups()[:6])
                moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
                return int(moment.timestamp()) + Fraction("0" + (match.group(7) or ""))
        except ValueError:
            pass
        raise self.make_error("invalid")


class Count(fields.Field):
    """A plain decimal integer (no sign, no spaces) of at least `minimum`."""

    default_error_messages = {"invalid": "Must be an integer of at least {minimum}."}

    def __init__(self, minimum: int, **kwargs: Any) -> None:
        documented = {"type": "integer", "minimum": minimum}  # as Instant: a plain Field has no type
        super().__init__(**{**kwargs, "metadata": {**documented, **kwargs.get("metadata", {})}})
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        # The length first: int() refuses text of more than 4,300 digits with a ValueError of its own.
        if not isinstance(value, str) or len(value) > MAX_STRING or not _DIGITS.fullmatch(value):
            raise self.make_error("invalid", minimum=self.minimum)
        if int(value) < self.minimum:
            raise self.make_error("invalid", minimum=self.minimum)
        return int(value)


def _id(name: str, repeatable: bool, description: str) -> fields.Field:
    item = fields.String(validate=validate.Length(min=1, max=MAX_STRING))
    meta = {"description": description}
    if repeatable:
        return fields.List(item, data_key=name, metadata=meta)
    return fields.String(data_key=name, validate=validate.Length(min=1, max=MAX_STRING), metadata=meta)


class QuerySchema(Schema):
    """A query string's schema. Names are case-sensitive; unknown ones are refused. It loads the request's
    MultiMapping: a name in REPEATABLE keeps each distinct value, any other must come once or always with the
    same value (clients re-send their parameters while following links)."""

    class Meta:
        unknown = RAISE

    REPEATABLE: frozenset[str] = frozenset()

    @pre_load
    def _one_value_each(self, params: MultiMapping[str], **kwargs: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for name in dict.fromkeys(params.keys()):
            values = list(dict.fromkeys(params.getall(name)))
            if name in self.REPEATABLE:
                raw[name] = values
            elif len(values) == 1:
                raw[name] = values[0]
        return raw  # a name sent twice with different values is left out here and named by _sent_once

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _sent_once(self, data: dict[str, Any], params: MultiMapping[str], **kwargs: Any) -> None:
        conflicts = {
            name: [Problem(CONFLICT, name, SENT_TWICE)]
            for name in dict.fromkeys(params.keys())
            if name not in self.REPEATABLE and len(set(params.getall(name))) > 1
        }
        if conflicts:
            raise ValidationError(conflicts)


class HistoryQuerySchema(QuerySchema):
    """Query of GET /v3/customers/{customerId}/orders."""

    REPEATABLE = frozenset({"order-type", "status", "offer-id", "subscription-id"})

    order_types = fields.List(
        fields.String(validate=validate.OneOf(STORED_ORDER_TYPES)),
        data_key="order-type",
        metadata={"description": "Repeatable; values are ORed"},
    )
    statuses = fields.List(
        fields.String(validate=validate.OneOf(STATUSES)),
        data_key="status",
        metadata={"description": "Repeatable; values are ORed"},
    )
    offer_ids = _id("offer-id", True, "Orders with any line of this offer; repeatable")
    subscription_ids = _id("subscription-id", True, "Orders with any line of this subscription; repeatable")
    reference_order_id = _id("reference-order-id", False, "Orders referencing this order")
    external_reference_id = _id("external-reference-id", False, "Exact match on externalReferenceId")
    reseller_id = _id("reseller-id", False, "One of the partner's resellers")
    start_date = Instant(
        data_key="start-date", metadata={"description": "Inclusive; default: start of the current term"}
    )
    end_date = Instant(data_key="end-date", metadata={"description": "Inclusive; default: now"})
    limit = Count(MIN_LIMIT, data_key="limit", metadata={
        "description": f"Page size; above {MAX_LIMIT} becomes {MAX_LIMIT}. Default {DEFAULT_LIMIT}"})
    offset = Count(MIN_OFFSET, data_key="offset", metadata={"description": "At most totalCount. Default 0"})
    fetch_price = fields.Boolean(
        truthy={"true"}, falsy={"false"}, data_key="fetch-price", metadata={"description": "Accepted; no prices"}
    )

    @validates_schema(skip_on_field_errors=False)
    def _window(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None and start > end:
            why = ["start-date is after end-date."]
            raise ValidationError({"start-date": why, "end-date": why})

    @post_load(pass_original=True)
    def _query(self, loaded: dict[str, Any], params: MultiMapping[str], **kwargs: Any) -> HistoryQuery:
        return HistoryQuery(
            order_types=frozenset(loaded.get("order_types", ())),
            statuses=frozenset(loaded.get("statuses", ())),
            offer_ids=frozenset(loaded.get("offer_ids", ())),
            subscription_ids=frozenset(loaded.get("subscription_ids", ())),
            reference_order_id=loaded.get("reference_order_id"),
            external_reference_id=loaded.get("external_reference_id"),
            reseller_id=loaded.get("reseller_id"),
            start=loaded.get("start_date"),
            end=loaded.get("end_date"),
            limit=min(loaded.get("limit", DEFAULT_LIMIT), MAX_LIMIT),
            offset=loaded.get("offset", 0),
            echo=tuple(dict.fromkeys((name, value) for name, value in params.items() if name not in PAGING)),
        )
