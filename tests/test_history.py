"""Acceptance tests of the order history and order details."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import customer_record, order_record, partner_headers, reseller_record

# Every test runs twice: pages from the history cache, and from SQL with the cache off.
pytestmark = pytest.mark.reads_history

ORDERS = "/v3/customers/C1/orders"
ERROR_KEYS = {"code", "message", "additionalDetails", "invalidFields"}
PAGE_KEYS = {"totalCount", "count", "offset", "limit", "items", "links"}
ORDER_KEYS = {
    "orderId", "customerId", "externalReferenceId", "orderType", "referenceOrderId", "currencyCode",
    "creationDate", "status", "source", "lineItems", "links",
}
LINE_KEYS = {"extLineItemNumber", "offerId", "quantity", "subscriptionId", "status", "currencyCode"}


def zulu(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


def one_year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


async def setup_p1(make_partner, load, records, *, coterm: str | None = None, extra=()):
    """Partner P1 with resellers R1, R2 and customer C1 (of R1), plus the given orders."""
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), reseller_record("R2", "P1"), customer_record("C1", "R1", coterm),
                *extra, *records])
    return partner


async def get(client, partner, path: str, pairs=(), headers: dict[str, str] | None = None):
    request_headers = await partner_headers(client, partner)
    if headers:
        request_headers.update(headers)
    url = f"{path}?{urlencode(list(pairs))}" if pairs else path
    response = await client.get(url, headers=request_headers)
    return response, await response.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [item["orderId"] for item in body["items"]]


def assert_error(response, body, status: int, code: str, fields: list[str] | None = None) -> None:
    assert response.status == status, body
    assert set(body) == ERROR_KEYS
    assert isinstance(body["code"], str)
    assert body["code"] == code
    if fields is not None:
        assert sorted(body["invalidFields"]) == sorted(fields)


# --- filters -----------------------------------------------------------------------------------------

FILTER_ORDERS = [
    order_record("1000000001", "C1", "2024-01-01T00:00:01Z", status="1000", order_type="NEW",
                 offers=["A"], subscriptions=["S1"], external_reference_id="ext-1"),
    order_record("1000000002", "C1", "2024-01-02T00:00:00Z", status="1002", order_type="RENEWAL",
                 offers=["B"], subscriptions=["S2"], external_reference_id="ext-10"),
    order_record("1000000003", "C1", "2024-01-03T00:00:00Z", status="1004", order_type="RETURN",
                 offers=["C", "A"], subscriptions=["S3", "S1"], reseller_id="R2",
                 reference_order_id="1000000001"),
    order_record("1000000004", "C1", "2024-01-04T00:00:00Z", status="1008", order_type="TRANSFER",
                 offers=["D"], subscriptions=["S4"]),
    order_record("1000000005", "C1", "2024-01-05T00:00:00Z", status="1000", order_type="RENEWAL",
                 offers=["B"], subscriptions=["S5"], reseller_id="R2"),
    order_record("1000000006", "C1", "2024-01-06T00:00:00Z", status="1000", order_type="RETURN",
                 offers=["A"], reference_order_id="1000000002"),
]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], ["1000000006", "1000000005", "1000000004", "1000000003", "1000000002", "1000000001"]),
        ([("status", "1000")], ["1000000006", "1000000005", "1000000001"]),
        ([("status", "1000"), ("status", "1002")], ["1000000006", "1000000005", "1000000002", "1000000001"]),
        ([("status", "1026")], []),
        ([("order-type", "RENEWAL"), ("order-type", "TRANSFER")], ["1000000005", "1000000004", "1000000002"]),
        ([("order-type", "NEW")], ["1000000001"]),
        ([("offer-id", "C"), ("offer-id", "D")], ["1000000004", "1000000003"]),
        ([("offer-id", "A")], ["1000000006", "1000000003", "1000000001"]),  # any line of the offer
        ([("subscription-id", "S1"), ("subscription-id", "S4")], ["1000000004", "1000000003", "1000000001"]),
        ([("subscription-id", "S5")], ["1000000005"]),
        ([("status", "1000"), ("order-type", "RENEWAL")], ["1000000005"]),
        ([("status", "1000"), ("status", "1004"), ("order-type", "RETURN")], ["1000000006", "1000000003"]),
        ([("offer-id", "B"), ("status", "1002")], ["1000000002"]),
        ([("offer-id", "A"), ("subscription-id", "S1"), ("status", "1004")], ["1000000003"]),
        ([("reference-order-id", "1000000001")], ["1000000003"]),
        ([("reference-order-id", "1000000002"), ("status", "1002")], []),
        ([("external-reference-id", "ext-1")], ["1000000001"]),  # exact, not a prefix of ext-10
        ([("external-reference-id", "ext")], []),
        ([("reseller-id", "R2")], ["1000000005", "1000000003"]),
        ([("reseller-id", "R1")], ["1000000006", "1000000004", "1000000002", "1000000001"]),
        ([("reseller-id", "R2"), ("status", "1000")], ["1000000005"]),
        ([("fetch-price", "true")], ["1000000006", "1000000005", "1000000004", "1000000003", "1000000002",
                                     "1000000001"]),
    ],
    ids=lambda value: urlencode(value) if isinstance(value, list) and value and isinstance(value[0], tuple) else None,
)
async def test_filters_or_within_and_across_parameters(client, make_partner, load, pairs, expected):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, ORDERS, pairs)
    assert response.status == 200, body
    assert ids(body) == expected
    assert body["totalCount"] == len(expected)
    assert body["count"] == len(expected)


# --- default window ----------------------------------------------------------------------------------

async def test_default_start_is_start_of_current_term(client, make_partner, load):
    now = datetime.now(timezone.utc)
    coterm = (now + timedelta(days=100)).date()
    start = one_year_before(coterm)
    term_start = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    records = [
        order_record("2000000001", "C1", zulu(term_start - timedelta(days=40))),
        order_record("2000000002", "C1", zulu(term_start - timedelta(seconds=1))),
        order_record("2000000003", "C1", zulu(term_start)),
        order_record("2000000004", "C1", zulu(term_start + timedelta(days=3))),
        order_record("2000000005", "C1", zulu(now - timedelta(hours=1))),
    ]
    partner = await setup_p1(make_partner, load, records, coterm=coterm.isoformat())
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["2000000005", "2000000004", "2000000003"]
    assert body["totalCount"] == 3


async def test_term_start_of_29_february_coterm_is_28_february(client, make_partner, load):
    records = [
        order_record("2100000001", "C1", "2027-02-27T23:59:59Z"),
        order_record("2100000002", "C1", "2027-02-28T00:00:00Z"),
        order_record("2100000003", "C1", "2027-03-01T00:00:00Z"),
        order_record("2100000004", "C1", "2028-02-29T00:00:00Z"),
    ]
    partner = await setup_p1(make_partner, load, records, coterm="2028-02-29")
    # end-date explicit (the term lies in the future); start-date left to its default, the term start
    response, body = await get(client, partner, ORDERS, [("end-date", "2028-03-01")])
    assert response.status == 200, body
    assert ids(body) == ["2100000004", "2100000003", "2100000002"]


async def test_customer_without_coterm_has_no_lower_bound(client, make_partner, load):
    now = datetime.now(timezone.utc)
    records = [
        order_record("2200000001", "C1", "1990-01-01T00:00:00Z"),
        order_record("2200000002", "C1", "2001-06-15T12:00:00Z"),
        order_record("2200000003", "C1", zulu(now - timedelta(minutes=5))),
    ]
    partner = await setup_p1(make_partner, load, records, coterm=None)
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["2200000003", "2200000002", "2200000001"]


@pytest.mark.parametrize("coterm", ["0001-01-01", "0001-12-31"])
async def test_a_term_that_began_before_year_1_has_no_lower_bound(client, make_partner, load, coterm):
    """A coterm date in year 1 puts its term's start in year 0, which no calendar here has: every page of
    the customer was a 500 (found by a probe)."""
    records = [order_record("2250000001", "C1", "1990-01-01T00:00:00Z")]
    partner = await setup_p1(make_partner, load, records, coterm=coterm)
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["2250000001"]


async def test_default_end_is_now(client, make_partner, load):
    now = datetime.now(timezone.utc)
    future = now + timedelta(days=1)
    records = [
        order_record("2300000001", "C1", zulu(now - timedelta(days=1))),
        order_record("2300000002", "C1", zulu(future)),
    ]
    partner = await setup_p1(make_partner, load, records, coterm=None)
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["2300000001"]
    end = zulu(now + timedelta(days=2))
    response, body = await get(client, partner, ORDERS, [("end-date", end)])
    assert response.status == 200, body
    assert ids(body) == ["2300000002", "2300000001"]


async def test_default_window_of_a_term_customer_excludes_future_orders(client, make_partner, load):
    now = datetime.now(timezone.utc)
    coterm = (now + timedelta(days=30)).date()
    records = [
        order_record("2400000001", "C1", zulu(now - timedelta(days=2))),
        order_record("2400000002", "C1", zulu(now + timedelta(days=2))),
    ]
    partner = await setup_p1(make_partner, load, records, coterm=coterm.isoformat())
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["2400000001"]


# --- dates -------------------------------------------------------------------------------------------

DATE_ORDERS = [
    order_record("3000000001", "C1", "2024-03-09T23:59:59Z"),
    order_record("3000000002", "C1", "2024-03-10T00:00:00Z"),
    order_record("3000000003", "C1", "2024-03-10T00:00:01Z"),
    order_record("3000000004", "C1", "2024-03-11T00:00:00Z"),
    order_record("3000000005", "C1", "2024-03-11T00:00:01Z"),
]


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # a date without time is midnight UTC; both bounds inclusive
        ([("start-date", "2024-03-10"), ("end-date", "2024-03-11")], ["3000000004", "3000000003", "3000000002"]),
        ([("start-date", "2024-03-10"), ("end-date", "2024-03-10")], ["3000000002"]),
        ([("start-date", "2024-03-10T00:00:01Z"), ("end-date", "2024-03-10T00:00:01Z")], ["3000000003"]),
        ([("start-date", "2024-03-09T23:59:59Z"), ("end-date", "2024-03-10T00:00:00Z")],
         ["3000000002", "3000000001"]),
        # full precision: fractional seconds with Z are accepted and compared exactly
        ([("start-date", "2024-03-10T00:00:00.5Z"), ("end-date", "2024-03-11")], ["3000000004", "3000000003"]),
        ([("start-date", "2024-03-10"), ("end-date", "2024-03-10T00:00:00.5Z")], ["3000000002"]),
        ([("start-date", "2024-03-10T00:00:00.000Z"), ("end-date", "2024-03-10T00:00:00.999999Z")],
         ["3000000002"]),
        ([("start-date", "2024-03-10T00:00:00.25Z"), ("end-date", "2024-03-10T00:00:00.75Z")], []),
        # every digit counts: 19 nines stay below the next second (28 significant digits would round them up)
        ([("start-date", "2024-03-10"), ("end-date", "2024-03-10T00:00:00." + "9" * 19 + "Z")], ["3000000002"]),
        ([("start-date", "2024-03-09T23:59:59." + "9" * 19 + "Z"), ("end-date", "2024-03-10")], ["3000000002"]),
        ([("start-date", "2024-03-11T00:00:00Z")], ["3000000005", "3000000004"]),
        ([("end-date", "2024-03-09T23:59:59Z")], ["3000000001"]),
    ],
    ids=lambda value: urlencode(value) if isinstance(value, list) and value and isinstance(value[0], tuple) else None,
)
async def test_date_bounds(client, make_partner, load, pairs, expected):
    partner = await setup_p1(make_partner, load, DATE_ORDERS, coterm=None)
    response, body = await get(client, partner, ORDERS, pairs)
    assert response.status == 200, body
    assert ids(body) == expected
    assert body["totalCount"] == len(expected)


@pytest.mark.parametrize("name", ["start-date", "end-date"])
@pytest.mark.parametrize(
    "value",
    [
        "2024-03-10T00:00:00+00:00",
        "2024-03-10T00:00:00.5+00:00",
        "2024-03-10T01:00:00+01:00",
        "2024-03-09T19:00:00-05:00",
        "2024-03-10T00:00:00",  # no zone
        "2024-03-10T00:00",
        "2024-03-10T00:00Z",
        "2024-02-30",
        "2024-03-10T25:00:00Z",
        "10/03/2024",
        "yesterday",
        "",
        "2024-03-10T00:00:00." + "0" * 44 + "Z",  # 65 characters: over the limit of every query value
        "٢٠٢٤-03-10",  # digits, but not ASCII ones
    ],
)
async def test_malformed_or_non_zulu_dates_are_rejected(client, make_partner, load, name, value):
    partner = await setup_p1(make_partner, load, DATE_ORDERS, coterm=None)
    response, body = await get(client, partner, ORDERS, [(name, value)])
    assert_error(response, body, 400, "1132", [name])


async def test_start_after_end_names_both_dates(client, make_partner, load):
    partner = await setup_p1(make_partner, load, DATE_ORDERS, coterm=None)
    response, body = await get(client, partner, ORDERS, [("start-date", "2024-03-11"), ("end-date", "2024-03-10")])
    assert_error(response, body, 400, "1132", ["start-date", "end-date"])
    response, body = await get(
        client, partner, ORDERS, [("start-date", "2024-03-10T00:00:01Z"), ("end-date", "2024-03-10T00:00:00.5Z")]
    )
    assert_error(response, body, 400, "1132", ["start-date", "end-date"])


async def test_explicit_start_after_now_with_default_end_is_an_empty_page(client, make_partner, load):
    now = datetime.now(timezone.utc)
    records = [
        order_record("3100000001", "C1", zulu(now - timedelta(days=1))),
        order_record("3100000002", "C1", zulu(now + timedelta(days=3))),
    ]
    partner = await setup_p1(make_partner, load, records, coterm=None)
    start = zulu(now + timedelta(days=1))
    response, body = await get(client, partner, ORDERS, [("start-date", start)])
    assert response.status == 200, body
    assert body["items"] == []
    assert body["totalCount"] == 0
    assert body["count"] == 0
    assert body["links"] == {"self": link(f"{ORDERS}?{urlencode([('start-date', start)])}&offset=0&limit=25")}


async def test_default_term_start_after_explicit_end_is_an_empty_page(client, make_partner, load):
    records = [order_record("3200000001", "C1", "2027-03-01T00:00:00Z")]
    partner = await setup_p1(make_partner, load, records, coterm="2028-02-29")
    response, body = await get(client, partner, ORDERS, [("end-date", "2026-01-01")])
    assert response.status == 200, body
    assert body["items"] == []
    assert body["totalCount"] == 0


# --- limit and offset --------------------------------------------------------------------------------

def many_orders(count: int, prefix: str = "4") -> list[dict[str, Any]]:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [
        order_record(f"{prefix}{n:09d}", "C1", zulu(base + timedelta(hours=n)))
        for n in range(count)
    ]


async def test_limit_default_is_25(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(30))
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert body["limit"] == 25
    assert body["count"] == 25
    assert len(body["items"]) == 25
    assert body["totalCount"] == 30
    assert body["offset"] == 0


@pytest.mark.parametrize(("asked", "applied"), [("500", 100), ("101", 100), ("100", 100), ("1", 1), ("7", 7)])
async def test_limit_is_capped_at_100_and_reported(client, make_partner, load, asked, applied):
    partner = await setup_p1(make_partner, load, many_orders(120))
    response, body = await get(client, partner, ORDERS, [("limit", asked)])
    assert response.status == 200, body
    assert body["limit"] == applied
    assert body["count"] == applied
    assert len(body["items"]) == applied
    assert body["totalCount"] == 120
    assert body["links"]["self"]["uri"] == f"{ORDERS}?offset=0&limit={applied}"
    assert body["links"]["next"]["uri"] == f"{ORDERS}?offset={applied}&limit={applied}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"), ("limit", "abc"), ("limit", "-1"), ("limit", "1.5"), ("limit", ""), ("limit", "١٢"),
        ("offset", "-1"), ("offset", "abc"), ("offset", "1.5"), ("offset", ""),
    ],
)
async def test_malformed_or_out_of_range_numbers(client, make_partner, load, name, value):
    partner = await setup_p1(make_partner, load, many_orders(5))
    response, body = await get(client, partner, ORDERS, [(name, value)])
    assert_error(response, body, 400, "1132", [name])


async def test_offset_equal_to_total_is_empty_page(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(5))
    response, body = await get(client, partner, ORDERS, [("offset", "5"), ("limit", "2")])
    assert response.status == 200, body
    assert body["items"] == []
    assert body["count"] == 0
    assert body["totalCount"] == 5
    assert body["offset"] == 5
    assert body["links"] == {
        "self": link(f"{ORDERS}?offset=5&limit=2"),
        "prev": link(f"{ORDERS}?offset=3&limit=2"),
    }


async def test_offset_zero_of_an_empty_history(client, make_partner, load):
    partner = await setup_p1(make_partner, load, [])
    response, body = await get(client, partner, ORDERS, [("offset", "0")])
    assert response.status == 200, body
    assert body == {"totalCount": 0, "count": 0, "offset": 0, "limit": 25, "items": [],
                    "links": {"self": link(f"{ORDERS}?offset=0&limit=25")}}


async def test_offset_above_total_is_1133(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(5))
    response, body = await get(client, partner, ORDERS, [("offset", "6")])
    assert_error(response, body, 400, "1133")
    # the total counted is the filtered one
    response, body = await get(client, partner, ORDERS, [("status", "1002"), ("offset", "1")])
    assert_error(response, body, 400, "1133")
    # and so is the total of an empty window (start after now): 0
    response, body = await get(client, partner, ORDERS, [("start-date", "2099-01-01"), ("offset", "1")])
    assert_error(response, body, 400, "1133")


# --- repeated, unknown and enumerated parameters -----------------------------------------------------

NON_REPEATABLE = [
    ("reference-order-id", "1000000001", "1000000002"),
    ("external-reference-id", "ext-1", "ext-10"),
    ("reseller-id", "R1", "R2"),
    ("start-date", "2024-01-01", "2024-01-02"),
    ("end-date", "2024-12-31T00:00:00Z", "2024-12-30T00:00:00Z"),
    ("limit", "3", "4"),
    ("offset", "0", "1"),
    ("fetch-price", "true", "false"),
]


@pytest.mark.parametrize(("name", "value", "other"), NON_REPEATABLE)
async def test_non_repeatable_parameter_twice_with_same_value_is_accepted(
    client, make_partner, load, name, value, other
):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, ORDERS, [(name, value), ("status", "1000"), (name, value)])
    assert response.status == 200, body
    _, expected = await get(client, partner, ORDERS, [(name, value), ("status", "1000")])
    assert ids(body) == ids(expected)
    assert body["totalCount"] == expected["totalCount"]
    # each parameter once in the links
    assert body["links"]["self"] == expected["links"]["self"]


@pytest.mark.parametrize(("name", "value", "other"), NON_REPEATABLE)
async def test_non_repeatable_parameter_twice_with_different_values_is_1132(
    client, make_partner, load, name, value, other
):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, ORDERS, [(name, value), (name, other)])
    assert_error(response, body, 400, "1132", [name])


async def test_a_value_that_is_not_utf8_is_1132_not_read_as_replacement_characters(client, make_partner, load):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, f"{ORDERS}?status=1000&offer-id=%FF%FE")
    assert_error(response, body, 400, "1132", ["offer-id"])
    response, body = await get(client, partner, f"{ORDERS}?offer-id=%EF%BF%BD")  # U+FFFD itself, as UTF-8
    assert response.status == 200 and body["links"]["self"]["uri"] == f"{ORDERS}?offer-id=%EF%BF%BD&offset=0&limit=25"


@pytest.mark.parametrize(
    ("name", "value"),
    [("Status", "1000"), ("foo", "1"), ("LIMIT", "5"), ("Offset", "0"), ("statuses", "1000"),
     ("order_type", "NEW"), ("startDate", "2024-01-01")],
)
async def test_unknown_parameter_is_1132(client, make_partner, load, name, value):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, ORDERS, [(name, value)])
    assert_error(response, body, 400, "1132", [name])
    response, body = await get(client, partner, ORDERS, [("status", "1000"), (name, value)])
    assert_error(response, body, 400, "1132", [name])


@pytest.mark.parametrize(
    "pairs",
    [
        [("status", "9999")],
        [("status", "1000"), ("status", "9999")],
        [("status", "complete")],
        [("order-type", "PREVIEW")],
        [("order-type", "NEW"), ("order-type", "SWITCH")],
        [("order-type", "BOGUS")],
        [("fetch-price", "yes")],
    ],
    ids=lambda pairs: urlencode(pairs),
)
async def test_unknown_enumerated_value_is_1132(client, make_partner, load, pairs):
    partner = await setup_p1(make_partner, load, FILTER_ORDERS)
    response, body = await get(client, partner, ORDERS, pairs)
    assert_error(response, body, 400, "1132", [pairs[-1][0]])


# --- sorting and paging ------------------------------------------------------------------------------

def tied_orders() -> list[dict[str, Any]]:
    """23 orders over 5 instants, with many ties on creationDate, ids loaded in a scrambled order."""
    instants = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z", "2024-05-02T00:00:00Z",
                "2024-05-02T00:00:00Z", "2024-04-30T23:59:59Z"]
    records = []
    for n in (17, 3, 22, 9, 11, 1, 14, 6, 20, 8, 2, 19, 5, 13, 0, 16, 10, 21, 4, 12, 18, 7, 15):
        records.append(order_record(f"50000000{n:02d}", "C1", instants[n % len(instants)]))
    return records


def expected_tied_order() -> list[str]:
    rows = [(record["creationDate"], record["orderId"]) for record in tied_orders()]
    return [order_id for _, order_id in sorted(rows, reverse=True)]


async def test_sorted_by_creation_date_then_order_id_descending(client, make_partner, load):
    partner = await setup_p1(make_partner, load, [
        order_record("5100000002", "C1", "2024-05-01T10:00:00Z"),
        order_record("5100000009", "C1", "2024-05-01T10:00:00Z"),
        order_record("5100000001", "C1", "2024-05-03T00:00:00Z"),
        order_record("5100000005", "C1", "2024-05-01T10:00:00Z"),
        order_record("5100000007", "C1", "2024-04-01T00:00:00Z"),
        order_record("5100000003", "C1", "2024-05-01T10:00:01Z"),
    ])
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert ids(body) == ["5100000001", "5100000003", "5100000009", "5100000005", "5100000002", "5100000007"]
    dates = [item["creationDate"] for item in body["items"]]
    assert dates == sorted(dates, reverse=True)


async def test_paging_never_skips_or_repeats(client, make_partner, load):
    partner = await setup_p1(make_partner, load, tied_orders())
    expected = expected_tied_order()
    response, whole = await get(client, partner, ORDERS, [("limit", "100")])
    assert response.status == 200, whole
    assert ids(whole) == expected
    seen: list[str] = []
    uri: str | None = f"{ORDERS}?limit=4"
    pages = 0
    while uri is not None:
        response = await client.get(uri, headers=await partner_headers(client, partner))
        body = await response.json()
        assert response.status == 200, body
        assert body["totalCount"] == 23
        assert body["count"] == len(body["items"]) <= 4
        seen.extend(ids(body))
        uri = body["links"].get("next", {}).get("uri")
        pages += 1
        assert pages <= 10
    assert pages == 6
    assert seen == expected
    assert len(set(seen)) == 23
    # and back again through prev
    back: list[str] = []
    uri = f"{ORDERS}?offset=20&limit=4"
    while uri is not None:
        response = await client.get(uri, headers=await partner_headers(client, partner))
        body = await response.json()
        back = ids(body) + back
        uri = body["links"].get("prev", {}).get("uri")
    assert back == expected


# --- links -------------------------------------------------------------------------------------------

def status_orders() -> list[dict[str, Any]]:
    base = datetime(2024, 2, 1, tzinfo=timezone.utc)
    records = [order_record(f"60000000{n:02d}", "C1", zulu(base + timedelta(days=n)), status="1000")
               for n in range(9)]
    records += [order_record(f"60000001{n:02d}", "C1", zulu(base + timedelta(days=n, hours=1)), status="1004")
                for n in range(4)]
    return records


async def test_links_of_a_filtered_middle_page(client, make_partner, load):
    partner = await setup_p1(make_partner, load, status_orders())
    response, body = await get(client, partner, ORDERS, [("status", "1000"), ("offset", "3"), ("limit", "3")])
    assert response.status == 200, body
    assert (body["totalCount"], body["count"], body["offset"], body["limit"]) == (9, 3, 3, 3)
    assert body["links"] == {
        "self": link("/v3/customers/C1/orders?status=1000&offset=3&limit=3"),
        "next": link("/v3/customers/C1/orders?status=1000&offset=6&limit=3"),
        "prev": link("/v3/customers/C1/orders?status=1000&offset=0&limit=3"),
    }


async def test_links_of_a_multi_filter_page_carry_every_parameter_once(client, make_partner, load):
    partner = await setup_p1(make_partner, load, status_orders())
    pairs = [
        ("limit", "2"), ("status", "1000"), ("status", "1004"), ("start-date", "2024-02-02T00:00:00Z"),
        ("offset", "4"), ("end-date", "2024-02-08"), ("fetch-price", "false"), ("status", "1000"),
        ("reseller-id", "R1"), ("start-date", "2024-02-02T00:00:00Z"),
    ]
    response, body = await get(client, partner, ORDERS, pairs)
    assert response.status == 200, body
    # 1000 orders at midnight Feb 2..8 (7, both bounds inclusive) plus 1004 orders at 01:00 Feb 2..4 (3)
    assert (body["totalCount"], body["count"], body["offset"], body["limit"]) == (10, 2, 4, 2)
    filters = ("status=1000&status=1004&start-date=2024-02-02T00%3A00%3A00Z&end-date=2024-02-08"
               "&fetch-price=false&reseller-id=R1")
    assert body["links"] == {
        "self": link(f"/v3/customers/C1/orders?{filters}&offset=4&limit=2"),
        "next": link(f"/v3/customers/C1/orders?{filters}&offset=6&limit=2"),
        "prev": link(f"/v3/customers/C1/orders?{filters}&offset=2&limit=2"),
    }


async def test_links_encode_values_once(client, make_partner, load):
    records = [order_record("6100000001", "C1", "2024-01-01T00:00:00Z", external_reference_id="A&B=C/D E")]
    partner = await setup_p1(make_partner, load, records)
    response, body = await get(client, partner, ORDERS, [("external-reference-id", "A&B=C/D E")])
    assert response.status == 200, body
    assert ids(body) == ["6100000001"]
    expected = f"{ORDERS}?{urlencode([('external-reference-id', 'A&B=C/D E')])}&offset=0&limit=25"
    assert expected == f"{ORDERS}?external-reference-id=A%26B%3DC%2FD+E&offset=0&limit=25"
    assert body["links"] == {"self": link(expected)}
    # following the link gives the same page
    response = await client.get(expected, headers=await partner_headers(client, partner))
    again = await response.json()
    assert response.status == 200, again
    assert again == body


async def test_links_use_the_applied_limit(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(120))
    response, body = await get(client, partner, ORDERS, [("offset", "10"), ("limit", "500")])
    assert response.status == 200, body
    assert body["links"] == {
        "self": link(f"{ORDERS}?offset=10&limit=100"),
        "next": link(f"{ORDERS}?offset=110&limit=100"),
        "prev": link(f"{ORDERS}?offset=0&limit=100"),
    }
    response, body = await get(client, partner, ORDERS)
    assert body["links"] == {
        "self": link(f"{ORDERS}?offset=0&limit=25"),
        "next": link(f"{ORDERS}?offset=25&limit=25"),
    }


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5, 6, 7])
async def test_next_and_prev_presence(client, make_partner, load, offset):
    partner = await setup_p1(make_partner, load, many_orders(7))
    response, body = await get(client, partner, ORDERS, [("offset", str(offset)), ("limit", "3")])
    assert response.status == 200, body
    assert body["count"] == min(3, 7 - offset)
    expected = {"self": link(f"{ORDERS}?offset={offset}&limit=3")}
    if offset + 3 < 7:
        expected["next"] = link(f"{ORDERS}?offset={offset + 3}&limit=3")
    if offset > 0:
        expected["prev"] = link(f"{ORDERS}?offset={max(0, offset - 3)}&limit=3")
    assert body["links"] == expected


# --- response shape ----------------------------------------------------------------------------------

RICH_ORDER = {
    "orderId": "5120008001",
    "customerId": "C1",
    "externalReferenceId": "759",
    "orderType": "NEW",
    "referenceOrderId": "",
    "currencyCode": "USD",
    "creationDate": "2019-05-02T22:49:54Z",
    "status": "1000",
    "source": "API",
    "lineItems": [
        {"extLineItemNumber": 1, "offerId": "80004567CA01A12", "quantity": 1, "subscriptionId": "86756309",
         "status": "1000", "currencyCode": "USD", "deploymentId": "12345",
         "promotions": [{"code": "SUMMER_SALE_123", "result": "SUCCESS"}]},
        {"extLineItemNumber": 2, "offerId": "65304470CA01A12", "quantity": 3, "subscriptionId": "86756310",
         "status": "1000", "currencyCode": "USD"},
    ],
    "links": {"self": {"uri": "/v3/customers/C1/orders/5120008001", "method": "GET", "headers": []}},
}


def rich_record() -> dict[str, Any]:
    record = {key: value for key, value in RICH_ORDER.items() if key != "links"}
    return {"type": "order", **record}


async def test_page_and_item_shape(client, make_partner, load):
    partner = await setup_p1(make_partner, load, [
        rich_record(),
        order_record("5120008002", "C1", "2019-05-01T00:00:00Z", status="1002", order_type="RENEWAL",
                     offers=["X"], subscriptions=["S9"], external_reference_id="e-2"),
    ])
    response, body = await get(client, partner, ORDERS)
    assert response.status == 200, body
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(body) == PAGE_KEYS
    assert (body["totalCount"], body["count"], body["offset"], body["limit"]) == (2, 2, 0, 25)
    assert body["items"][0] == RICH_ORDER
    for item in body["items"]:
        assert set(item) == ORDER_KEYS
        assert item["links"] == {"self": link(f"/v3/customers/C1/orders/{item['orderId']}")}
    plain = body["items"][1]
    assert plain == {
        "orderId": "5120008002", "customerId": "C1", "externalReferenceId": "e-2", "orderType": "RENEWAL",
        "referenceOrderId": "", "currencyCode": "USD", "creationDate": "2019-05-01T00:00:00Z", "status": "1002",
        "source": "API",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "X", "quantity": 1, "subscriptionId": "S9",
                       "status": "1002", "currencyCode": "USD"}],
        "links": {"self": link("/v3/customers/C1/orders/5120008002")},
    }
    assert set(plain["lineItems"][0]) == LINE_KEYS
    assert set(body["items"][0]["lineItems"][1]) == LINE_KEYS
    assert set(body["items"][0]["lineItems"][0]) == LINE_KEYS | {"deploymentId", "promotions"}


# --- request and correlation ids ---------------------------------------------------------------------

async def test_request_id_echoed_and_correlation_id_echoed(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(2))
    headers = await partner_headers(client, partner)
    headers["X-Request-Id"] = "req-abc-123"
    response = await client.get(ORDERS, headers=headers)
    assert response.status == 200
    assert response.headers["X-Request-Id"] == "req-abc-123"
    assert response.headers["X-Correlation-Id"] == headers["X-Correlation-Id"]


@pytest.mark.parametrize(
    ("path", "status"),
    [(ORDERS, 200), (f"{ORDERS}?limit=0", 400), ("/v3/customers/NOPE/orders", 404), (f"{ORDERS}/9", 404)],
)
async def test_request_id_generated_when_absent(client, make_partner, load, path, status):
    partner = await setup_p1(make_partner, load, many_orders(2))
    headers = await partner_headers(client, partner)
    first = await client.get(path, headers=headers)
    assert first.status == status
    generated = first.headers["X-Request-Id"]
    assert str(uuid.UUID(generated)) == generated.lower()
    assert first.headers["X-Correlation-Id"] == headers["X-Correlation-Id"]
    second = await client.get(path, headers=headers)
    assert second.headers["X-Request-Id"] != generated
    headers["X-Request-Id"] = "mine-1"
    third = await client.get(path, headers=headers)
    assert third.status == status
    assert third.headers["X-Request-Id"] == "mine-1"


# --- order details -----------------------------------------------------------------------------------

async def test_order_details(client, make_partner, load):
    partner = await setup_p1(
        make_partner, load,
        [rich_record(), order_record("7000000001", "C2", "2024-01-01T00:00:00Z")],
        extra=[customer_record("C2", "R2")],
    )
    response, body = await get(client, partner, "/v3/customers/C1/orders/5120008001")
    assert response.status == 200, body
    assert response.headers["Content-Type"].startswith("application/json")
    assert body == RICH_ORDER
    _, page = await get(client, partner, ORDERS)
    assert page["items"][0] == body

    response, body = await get(client, partner, "/v3/customers/C2/orders/7000000001")
    assert response.status == 200, body
    assert body["orderId"] == "7000000001"
    assert body["customerId"] == "C2"
    assert body["links"] == {"self": link("/v3/customers/C2/orders/7000000001")}


async def test_an_early_year_keeps_four_digits(client, make_partner, load):
    partner = await setup_p1(make_partner, load, [order_record("7000000002", "C1", "0999-12-31T23:59:59Z")],
                             coterm=None)
    response, body = await get(client, partner, "/v3/customers/C1/orders/7000000002")
    assert response.status == 200 and body["creationDate"] == "0999-12-31T23:59:59Z"


async def test_order_details_not_found(client, make_partner, load):
    partner = await setup_p1(
        make_partner, load,
        [rich_record(), order_record("7000000001", "C2", "2024-01-01T00:00:00Z")],
        extra=[customer_record("C2", "R2")],
    )
    response, body = await get(client, partner, "/v3/customers/C1/orders/9999999999")
    assert_error(response, body, 404, "2115")
    response, body = await get(client, partner, "/v3/customers/NOPE/orders/5120008001")
    assert_error(response, body, 404, "1116")
    response, body = await get(client, partner, "/v3/customers/NOPE/orders/9999999999")
    assert_error(response, body, 404, "1116")
    # another customer's order of the same partner, under the wrong customer's path
    response, body = await get(client, partner, "/v3/customers/C1/orders/7000000001")
    assert_error(response, body, 404, "2115")
    response, body = await get(client, partner, "/v3/customers/C2/orders/5120008001")
    assert_error(response, body, 404, "2115")


async def test_history_of_unknown_customer_is_1116(client, make_partner, load):
    partner = await setup_p1(make_partner, load, many_orders(2))
    response, body = await get(client, partner, "/v3/customers/NOPE/orders")
    assert_error(response, body, 404, "1116")
    response, body = await get(client, partner, "/v3/customers/c1/orders")  # ids are not case-folded
    assert_error(response, body, 404, "1116")
