from conftest import customer_record, order_record, partner_headers, reseller_record


async def test_history_page_for_own_customer(client, make_partner, load):
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"),
                order_record("1000000001", "C1", "2024-01-02T03:04:05Z")])
    response = await client.get("/v3/customers/C1/orders", headers=await partner_headers(client, partner))
    assert response.status == 200
    body = await response.json()
    assert body["totalCount"] == 1
    assert body["items"][0]["orderId"] == "1000000001"
