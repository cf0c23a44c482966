"""X-Correlation-Id replay, in process and across real sockets and restarts."""
from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest
from conftest import (
    customer_record,
    partner_headers,
    process_headers,
    raw_sql,
    reseller_record,
    seed_with_cli,
    server_process,
)

ORDERS = "/v3/customers/C1/orders"
BODY = {"orderType": "NEW", "currencyCode": "USD", "externalReferenceId": "PO-9",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 3}]}


@pytest.fixture
async def partner(make_partner, load):
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    return credential


async def post(client, headers, body=BODY, path=ORDERS, method="POST", **kwargs):
    response = await client.request(method, path, json=body, headers=headers, **kwargs)
    return response, await response.read()


async def count_orders(client, partner) -> int:
    response = await client.get(ORDERS, headers=await partner_headers(client, partner))
    return int((await response.json())["totalCount"])


async def test_identical_retry_replays_byte_for_byte(client, partner):
    headers = await partner_headers(client, partner)
    first, first_body = await post(client, headers)
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    second, second_body = await post(client, headers)
    assert second.status == 201
    assert second_body == first_body
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert await count_orders(client, partner) == 1


async def test_reordered_keys_and_whitespace_still_replay(client, partner):
    headers = await partner_headers(client, partner)
    first, first_body = await post(client, headers, params={"fetch-price": "true"})
    reordered = json.dumps(dict(reversed(list(BODY.items()))), indent=4)
    response = await client.post(ORDERS, data=reordered, params={"fetch-price": "true"},
                                 headers={**headers, "Content-Type": "application/json"})
    assert response.status == 201
    assert await response.read() == first_body
    assert response.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    "change",
    [
        {"body": {**BODY, "externalReferenceId": "PO-10"}},
        {"path": "/v3/customers/C2/orders"},
        {"params": {"fetch-price": "false"}},
        {"method": "PATCH", "path": f"{ORDERS}/1234567890", "body": {"externalReferenceId": "x"}},
    ],
)
async def test_same_key_for_another_request_is_4123_and_executes_nothing(client, partner, change):
    headers = await partner_headers(client, partner)
    first, _ = await post(client, headers)
    assert first.status == 201
    response, raw = await post(client, headers, **change)
    assert response.status == 422
    assert json.loads(raw)["code"] == "4123"
    assert await count_orders(client, partner) == 1


async def test_stored_validation_error_is_replayed(client, partner):
    headers = await partner_headers(client, partner)
    bad = {**BODY, "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 0}]}
    first, first_body = await post(client, headers, body=bad)
    assert first.status == 400 and json.loads(first_body)["code"] == "2120"
    second, second_body = await post(client, headers, body=bad)
    assert (second.status, second_body) == (400, first_body)
    assert second.headers["Idempotent-Replayed"] == "true"


async def test_refusals_before_the_handler_are_not_stored(client, partner):
    headers = await partner_headers(client, partner)
    response, _ = await post(client, {**headers, "Authorization": "Bearer nope"})
    assert response.status == 401
    response, _ = await client.post(ORDERS, data=b"not json", headers=headers), None
    assert response.status == 400
    response, _ = await post(client, headers)
    assert response.status == 201
    assert "Idempotent-Replayed" not in response.headers


async def test_state_dependent_answer_is_not_stored(client, partner, load):
    """A client deriving its key from the body gets its order once the customer exists."""
    headers = await partner_headers(client, partner)
    path = "/v3/customers/C9/orders"
    response, raw = await post(client, headers, path=path)
    assert response.status == 404 and json.loads(raw)["code"] == "1116"
    await load([customer_record("C9", "R1")])
    response, _ = await post(client, headers, path=path)
    assert response.status == 201
    assert "Idempotent-Replayed" not in response.headers


async def test_crash_releases_the_key(client, partner, db_url):
    headers = await partner_headers(client, partner)
    raw_sql(db_url, "ALTER TABLE line_items RENAME TO broken")
    response, raw = await post(client, headers)
    assert response.status == 500 and json.loads(raw)["code"] == "1124"
    raw_sql(db_url, "ALTER TABLE broken RENAME TO line_items")
    response, _ = await post(client, headers)
    assert response.status == 201
    assert "Idempotent-Replayed" not in response.headers
    assert await count_orders(client, partner) == 1


async def test_new_key_with_a_used_request_id_is_4120(client, partner):
    headers = {**await partner_headers(client, partner), "X-Request-Id": "rid-42"}
    response, _ = await post(client, headers)
    assert response.status == 201
    response, raw = await post(client, {**headers, "X-Correlation-Id": "another-key"})
    assert response.status == 400 and json.loads(raw)["code"] == "4120"
    assert await count_orders(client, partner) == 1


async def test_a_request_id_too_long_for_an_index_is_echoed_and_checked_as_any(client, partner):
    """PostgreSQL's index takes at most 2,704 bytes a row: a longer X-Request-Id (within the 8 KiB header
    limit) was a 500 on every POST. It is kept as its digest, so it is echoed, stored and found again."""
    long_id = "".join(hashlib.sha256(b"%d" % n).hexdigest() for n in range(94))  # 3,008 bytes, incompressible
    headers = {**await partner_headers(client, partner), "X-Request-Id": long_id}
    response, _ = await post(client, headers)
    assert response.status == 201 and response.headers["X-Request-Id"] == long_id
    replayed, _ = await post(client, headers)
    assert replayed.status == 201 and replayed.headers["Idempotent-Replayed"] == "true"
    response, raw = await post(client, {**headers, "X-Correlation-Id": "another-key"})
    assert response.status == 400 and json.loads(raw)["code"] == "4120"
    response, _ = await post(client, {**headers, "X-Correlation-Id": "a-third-key", "X-Request-Id": long_id[:-1]})
    assert response.status == 201
    assert await count_orders(client, partner) == 2


INEXACT = ["123456789012345678901234567890", "-9223372036854775809", "1e400", "1e-400", "-1" + "0" * 400,
           "0.12345678901234567890123", "123456789.123456789"]


@pytest.mark.parametrize("number", INEXACT)
async def test_numbers_json_cannot_tell_apart_are_fingerprinted_as_written(client, partner, number):
    """orjson reads an integer beyond 64 bits, or a decimal no double holds, as the nearest double: two bodies
    differing only in such a number (in a field that is accepted and ignored) shared a fingerprint, and the
    second was replayed the first's answer. Such a body is matched with its numbers as written; key order,
    white space and a number's spelling still do not matter."""
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    raw = json.dumps({**BODY, "pricing": {"total": 1}}).replace('"total": 1', f'"total": {number}')
    placed = await client.post(ORDERS, data=raw, headers=headers)
    assert placed.status == 201, await placed.text()
    reordered = json.dumps({"pricing": {"total": 1}, **BODY}, separators=(",", ":"))
    respelled = number.replace("e", ".0e") if "e" in number else number + "0" if "." in number else number
    for same in (raw, reordered.replace('"total":1', f'"total":{number}'), raw.replace(number, respelled)):
        again = await client.post(ORDERS, data=same, headers=headers)
        assert again.headers.get("Idempotent-Replayed") == "true", same
        assert await again.read() == await placed.read()
    other = number[:-1] + str((int(number[-1]) + 1) % 10)  # the last digit changed: another number
    response = await client.post(ORDERS, data=raw.replace(number, other), headers=headers)
    assert (await response.json())["code"] == "4123"
    exact = '{"total": 1234567890123456789, "low": -9223372036854775808, "share": 0.1, "big": 1e300, "x": 2.5e-7}'
    raw = json.dumps({**BODY, "pricing": {}}).replace('"pricing": {}', f'"pricing": {exact}')
    response = await client.post(ORDERS, data=raw, headers={**headers, "X-Correlation-Id": "exact"})
    assert response.status == 201, await response.text()
    response = await client.post(ORDERS, data=raw.replace(", ", ","), headers={**headers, "X-Correlation-Id": "exact"})
    assert response.headers.get("Idempotent-Replayed") == "true"  # numbers that read exactly: any spelling
    assert await count_orders(client, partner) == 2


async def test_a_lone_surrogate_beside_a_number_beyond_a_double_is_not_json(client, partner):
    """The standard library, which reads 1e400, reads "\\ud800" too, which no stored text may hold: a 500."""
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    raw = json.dumps({**BODY, "pricing": {"total": 1}}).replace('"total": 1', '"total": 1e400')
    raw = raw.replace('"PO-9"', '"PO-\\ud800"')
    for _ in range(2):
        response = await client.post(ORDERS, data=raw, headers=headers)
        assert (response.status, (await response.json())["code"]) == (400, "1117")
    response = await client.post(ORDERS, json=BODY, headers=headers)
    assert response.status == 201  # not stored: the key was free


@pytest.mark.parametrize("number", INEXACT)
async def test_a_quantity_json_cannot_read_exactly_is_2120_beside_the_other_problems(client, partner, number):
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    raw = json.dumps({**BODY, "color": 1}).replace('"quantity": 3', f'"quantity": {number}')
    response = await client.post(ORDERS, data=raw, headers=headers)
    answer = await response.json()
    assert (response.status, answer["code"], answer["invalidFields"]) == (400, "1121", ["color", "quantity"])
    assert any(detail.startswith("Line Item: 1, Reason: quantity") for detail in answer["additionalDetails"])


UNBOUNDED = ["1e9999999999999999999", "-2E+99999999999999999999", "0E-9999999999999999999", "7" * 4301]


@pytest.mark.parametrize("number", UNBOUNDED)
async def test_numbers_no_decimal_or_int_holds_are_json_too(client, partner, number):
    """An exponent beyond 10**18 (which not even Decimal holds) was a 500; an integer of over 4,300 digits
    (the interpreter's limit) a 1117 of its own that hid the other problems, where 1e400 is read."""
    headers = {**await partner_headers(client, partner), "Content-Type": "application/json"}
    raw = json.dumps({**BODY, "pricing": {"total": 1}}).replace('"total": 1', f'"total": {number}')
    placed = await client.post(ORDERS, data=raw, headers=headers)
    assert placed.status == 201, await placed.text()
    reordered = json.dumps({"pricing": {"total": 1}, **BODY}).replace('"total": 1', f'"total": {number}')
    again = await client.post(ORDERS, data=reordered, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and await again.read() == await placed.read()
    response = await client.post(ORDERS, data=raw.replace(number, number[:-1] + "8"), headers=headers)
    assert (await response.json())["code"] == "4123"
    quantity = json.dumps({**BODY, "color": 1}).replace('"quantity": 3', f'"quantity": {number}')
    response = await client.post(ORDERS, data=quantity, headers={**headers, "X-Correlation-Id": "quantity"})
    answer = await response.json()
    assert (response.status, answer["code"], answer["invalidFields"]) == (400, "1121", ["color", "quantity"])
    patch = await client.patch(f"{ORDERS}/{(await placed.json())['orderId']}",
                               data=f'{{"externalReferenceId": {number}}}', headers={**headers, "X-Correlation-Id": "p"})
    assert (patch.status, (await patch.json())["invalidFields"]) == (400, ["externalReferenceId"])


async def test_gets_are_never_stored(client, partner):
    headers = await partner_headers(client, partner)
    for _ in range(2):
        response = await client.get(ORDERS, headers=headers)
        assert response.status == 200
        assert "Idempotent-Replayed" not in response.headers
    response, _ = await post(client, headers)
    assert response.status == 201  # the key a GET used is still free


async def test_two_partners_with_the_same_key_are_independent(client, partner, make_partner, load):
    other = await make_partner("P2")
    await load([reseller_record("R2", "P2"), customer_record("C2", "R2")])
    mine = {**await partner_headers(client, partner), "X-Correlation-Id": "shared"}
    theirs = {**await partner_headers(client, other), "X-Correlation-Id": "shared"}
    first, _ = await post(client, mine)
    second, _ = await post(client, theirs, path="/v3/customers/C2/orders")
    assert first.status == second.status == 201
    assert "Idempotent-Replayed" not in second.headers


async def test_replays_asked_at_once_each_get_their_own_answer(client, partner, make_partner, load):
    """Both partners place orders under the same keys, then retry all of them at once beside new keys: each
    retry gets its own partner's answer byte for byte, each new key places an order. On PostgreSQL the
    retries share reads of the stored answers (gateway.storage.key_batches), one statement per partner."""
    other = await make_partner("P2")
    await load([reseller_record("R2", "P2"), customer_record("C2", "R2")])
    paths = {"P1": ORDERS, "P2": "/v3/customers/C2/orders"}
    tokens = {"P1": await partner_headers(client, partner), "P2": await partner_headers(client, other)}

    def headers(who: str, key: str) -> dict[str, str]:
        return {**tokens[who], "X-Correlation-Id": key}

    keys = [f"order-{n}" for n in range(6)]
    placed = {}
    for who in paths:
        for n, key in enumerate(keys):
            body = {**BODY, "externalReferenceId": f"{who}-{n}"}
            response, placed[who, key] = await post(client, headers(who, key), body=body, path=paths[who])
            assert response.status == 201
    retried = [(who, key) for who in paths for key in keys] * 2
    fresh = [(who, f"new-{n}") for who in paths for n in range(3)]

    async def send(who: str, key: str):
        n = key.rsplit("-", 1)[1]
        body = {**BODY, "externalReferenceId": f"{who}-{n}"}
        return await post(client, headers(who, key), body=body, path=paths[who])

    answers = await asyncio.gather(*(send(who, key) for who, key in [*retried, *fresh]))
    for (who, key), (response, body) in zip([*retried, *fresh], answers):
        assert response.status == 201, body
        if key.startswith("new-"):
            assert "Idempotent-Replayed" not in response.headers
        else:
            assert response.headers["Idempotent-Replayed"] == "true"
            assert body == placed[who, key]
    for who in paths:
        response = await client.get(paths[who], headers=tokens[who])
        assert (await response.json())["totalCount"] == len(keys) + 3


async def test_patch_replays(client, partner):
    headers = await partner_headers(client, partner)
    created, raw = await post(client, headers)
    order_id = json.loads(raw)["orderId"]
    headers = await partner_headers(client, partner)
    first, first_body = await post(client, headers, method="PATCH", path=f"{ORDERS}/{order_id}",
                                   body={"externalReferenceId": "R-1"})
    second, second_body = await post(client, headers, method="PATCH", path=f"{ORDERS}/{order_id}",
                                     body={"externalReferenceId": "R-1"})
    assert first.status == second.status == 200 and first_body == second_body
    assert second.headers["Idempotent-Replayed"] == "true"


# -- real processes ----------------------------------------------------------------------------------------


async def test_replay_survives_a_restart(db_url, tmp_path):
    partner = seed_with_cli(db_url, tmp_path)
    with server_process(db_url) as base:
        async with aiohttp.ClientSession(base) as http:
            headers = await process_headers(http, partner, "restart-key")
            async with http.post(ORDERS, json=BODY, headers=headers) as response:
                assert response.status == 201
                first = await response.read()
    with server_process(db_url) as base:
        async with aiohttp.ClientSession(base) as http:
            async with http.post(ORDERS, json=BODY, headers=headers) as response:
                assert response.status == 201
                assert response.headers["Idempotent-Replayed"] == "true"
                assert await response.read() == first


async def test_fifty_simultaneous_duplicates_make_one_order(db_url, tmp_path):
    partner = seed_with_cli(db_url, tmp_path)
    with server_process(db_url) as base:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(base, connector=connector) as http:
            headers = await process_headers(http, partner, "storm-key")

            async def one() -> tuple[int, bytes, dict[str, str]]:
                async with http.post(ORDERS, json=BODY, headers=headers) as response:
                    return response.status, await response.read(), dict(response.headers)

            answers = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(50))), timeout=60)
            async with http.get(ORDERS, headers=headers) as response:
                history = await response.json()
    created = [a for a in answers if a[0] == 201 and "Idempotent-Replayed" not in a[2]]
    assert len(created) == 1
    for status, body, headers_ in answers:
        if status == 201:
            assert body == created[0][1]
        else:
            assert status == 409 and json.loads(body)["code"] == "4122" and headers_["Retry-After"]
    assert history["totalCount"] == 1
