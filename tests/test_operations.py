"""Operations beyond the log line: metrics, health, readiness."""
from __future__ import annotations

import base64

from conftest import customer_record, partner_headers, raw_sql, reseller_record
from prometheus_client.parser import text_string_to_metric_families


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


async def test_metrics_move_with_requests(client, make_partner, load):
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    route = "/v3/customers/{customerId}/orders"
    ok = ("gateway_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    rejected = ("gateway_auth_rejections_total", (("code", "4115"),))
    latency = ("gateway_request_duration_seconds_count", (("route", route),))
    replays = ("gateway_idempotent_replays_total", ())
    before = await scrape(client)
    headers = await partner_headers(client, partner)
    for _ in range(3):
        assert (await client.get("/v3/customers/C1/orders", headers=headers)).status == 200
    assert (await client.get("/v3/customers/C1/orders", headers={"X-Api-Key": "bad"})).status == 403
    body = {"orderType": "NEW", "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "O", "quantity": 1}]}
    for _ in range(2):
        await client.post("/v3/customers/C1/orders", json=body, headers=headers)
    after = await scrape(client)
    assert after[ok] - before.get(ok, 0) == 3
    assert after[latency] - before.get(latency, 0) == 6  # 3 GET, 1 refused, 2 POST
    assert after[rejected] - before.get(rejected, 0) == 1
    assert after[replays] - before.get(replays, 0) == 1



async def test_failed_client_authentication_is_an_auth_rejection(client, make_partner):
    partner = await make_partner("P1")
    before = await scrape(client)
    rejections = {dict(labels)["code"]: value for (name, labels), value in before.items()
                  if name == "gateway_auth_rejections_total"}
    assert rejections == {"4115": 0, "4116": 0, "4117": 0, "invalid_client": 0}  # each shown from the start
    good = {"grant_type": "client_credentials", "client_id": partner.api_key, "client_secret": partner.client_secret}
    wrong_basic = base64.b64encode(f"{partner.api_key}:wrong".encode()).decode()
    for path, form, headers, status in [
        ("/ims/token/v3", good, {}, 200),
        ("/ims/token/v3", {**good, "grant_type": "password"}, {}, 400),  # unsupported_grant_type: not counted
        ("/ims/token/v3", {"client_id": "x"}, {}, 400),  # invalid_request: not counted
        ("/ims/token/v2", {"grant_type": "client_credentials"}, {}, 401),  # no credentials
        ("/ims/token/v2", {"grant_type": "client_credentials"}, {"Authorization": f"Basic {wrong_basic}"}, 401),
        *[("/ims/token/v3", {**good, "client_id": "unknown"}, {}, 401)] * 10,
        ("/ims/token/v3", {**good, "client_id": "unknown"}, {}, 429),  # locked out: a rate limit, not counted
    ]:
        assert (await client.post(path, data=form, headers=headers)).status == status
    after = await scrape(client)
    rejected = ("gateway_auth_rejections_total", (("code", "invalid_client"),))
    assert after[rejected] == 12
    assert after[("gateway_rate_limited_total", (("limit", "token"),))] == 1

async def test_health_needs_no_credentials(client):
    assert (await client.get("/healthz")).status == 200
    assert (await (await client.get("/readyz")).json()) == {"status": "ok"}


async def test_readyz_follows_the_database(client, db_url):
    assert (await client.get("/readyz")).status == 200
    raw_sql(db_url, "ALTER TABLE meta RENAME TO meta_away")
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json()) == {"status": "unavailable"}
    raw_sql(db_url, "ALTER TABLE meta_away RENAME TO meta")
    assert (await client.get("/readyz")).status == 200


async def test_every_metric_family_of_the_operations_contract(client, make_partner, load):
    partner = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1")])
    headers = await partner_headers(client, partner)
    body = {"orderType": "NEW", "currencyCode": "USD",
            "lineItems": [{"extLineItemNumber": 1, "offerId": "O", "quantity": 1}]}
    for sent in (body, body, {**body, "externalReferenceId": "other"}):
        await client.post("/v3/customers/C1/orders", json=sent, headers=headers)
    samples = await scrape(client)
    names = {name for name, _ in samples}
    for family in ("gateway_requests_total", "gateway_request_duration_seconds_bucket", "gateway_requests_in_flight",
                   "gateway_auth_rejections_total", "gateway_rate_limited_total", "gateway_webhook_attempts_total",
                   "gateway_webhook_oldest_pending_seconds", "process_cpu_seconds_total",
                   "process_resident_memory_bytes", "process_open_fds", "python_info", "python_gc_objects_collected_total"):
        assert family in names or any(n.startswith(family.rsplit("_total", 1)[0]) for n in names), family
    assert samples[("gateway_requests_in_flight", ())] == 1  # the scrape itself
    outcomes = {dict(labels)["outcome"]: value for (name, labels), value in samples.items()
                if name == "gateway_idempotency_outcomes_total"}
    assert outcomes == {"stored": 1, "replayed": 1, "mismatch": 1, "conflict": 0}


async def test_openmetrics_when_asked_for(client):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await response.text()
    assert text.endswith("# EOF\n")
    assert "gateway_requests_in_flight" in {family.name for family in openmetrics_families(text)}
    plain = await client.get("/metrics", headers={"Accept": "text/plain"})
    assert plain.headers["Content-Type"].startswith("text/plain") and "# EOF" not in await plain.text()
