"""Responses validate against the response schemas the OpenAPI document publishes."""
from conftest import customer_record, order_record, partner_headers, reseller_record

from schemas.common import ErrorSchema
from schemas.orders import OrderPageSchema, OrderSchema


async def test_responses_match_their_schemas(client, make_partner, load):
    partner = await make_partner("P1")
    record = order_record("1000000001", "C1", "2024-01-02T03:04:05Z", offers=["A", "B"])
    record["lineItems"][0]["promotions"] = [{"code": "SUMMER_SALE_123", "result": "SUCCESS"}]
    record["lineItems"][1]["deploymentId"] = "12345"
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"), record])
    headers = await partner_headers(client, partner)
    response = await client.get("/v3/customers/C1/orders", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    page = await response.json()
    assert OrderPageSchema().validate(page) == {}
    assert page["totalCount"] == 1 and page["items"][0]["orderId"] == "1000000001"
    response = await client.get("/v3/customers/C1/orders/1000000001", headers=headers)
    order = await response.json()
    assert OrderSchema().validate(order) == {}
    assert order == page["items"][0]
    response = await client.get("/v3/customers/C1/orders/nope", headers=headers)
    assert ErrorSchema().validate(await response.json()) == {}
