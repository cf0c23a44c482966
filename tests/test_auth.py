"""The checks of every /v3 request, in their order, and tokens."""
from __future__ import annotations

import base64
import io
import time
import uuid

import aiohttp
import jwt
import pytest
from conftest import TEST_SIGNING_KEY, bearer, customer_record, order_record, partner_headers, raw_sql, reseller_record

from gateway.partners import create_credential, revoke_credential
from gateway.storage import open_storage

HISTORY = "/v3/customers/C1/orders"


@pytest.fixture
async def partner(make_partner, load):
    credential = await make_partner("P1")
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"),
                order_record("1000000001", "C1", "2024-01-02T03:04:05Z")])
    return credential


def assert_error(response, body, status: int, code: str) -> None:
    assert response.status == status, body
    assert body["code"] == code
    assert set(body) == {"code", "message", "additionalDetails", "invalidFields"}
    assert isinstance(body["message"], str) and body["message"]
    assert uuid.UUID(response.headers["X-Request-Id"])


def forged(claims: dict, key: str = TEST_SIGNING_KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def claims_for(partner, **overrides) -> dict:
    now = int(time.time())
    claims = {"iss": "order-gateway", "sub": partner.partner_id, "client_id": partner.api_key,
              "iat": now, "exp": now + 3600}
    claims.update(overrides)
    return claims


# -- 403 4115 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, "", "not-a-key"])
async def test_missing_or_unknown_api_key_is_4115(client, partner, api_key):
    headers = await partner_headers(client, partner)
    if api_key is None:
        del headers["X-Api-Key"]
    else:
        headers["X-Api-Key"] = api_key
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 403, "4115")


async def test_revoked_api_key_is_4115_and_gets_no_token(client, partner, db_url):
    headers = await partner_headers(client, partner)
    async with open_storage(db_url) as storage:
        assert await revoke_credential(storage, partner.api_key)
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 403, "4115")
    response = await client.post("/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": partner.api_key, "client_secret": partner.client_secret})
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_client"


async def test_api_key_is_checked_before_everything_else(client, partner):
    response = await client.get("/v3/no/such/route", headers={"X-Api-Key": "nope"})
    assert_error(response, await response.json(), 403, "4115")


# -- 401 4117 / 4116 -----------------------------------------------------------------------------------


async def test_missing_authorization_is_4117_with_challenge(client, partner):
    response = await client.get(HISTORY, headers={"X-Api-Key": partner.api_key})
    assert_error(response, await response.json(), 401, "4117")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "", "Bearer not.a.jwt", "Token abc", "Bearer a b c"],
)
async def test_invalid_authorization_is_4116(client, partner, authorization):
    headers = {"X-Api-Key": partner.api_key, "Authorization": authorization, "X-Correlation-Id": "c"}
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 401, "4116")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(client, partner, scheme):
    token = await bearer(client, partner)
    headers = {"X-Api-Key": partner.api_key, "Authorization": f"{scheme} {token}", "X-Correlation-Id": "c"}
    response = await client.get(HISTORY, headers=headers)
    assert response.status == 200


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda p: forged(claims_for(p), key="another-key-of-enough-length-0123456789"), id="bad-signature"),
        pytest.param(lambda p: forged(claims_for(p))[:-3] + "AAA", id="tampered-signature"),
        pytest.param(lambda p: forged(claims_for(p, sub="P2")), id="tampered-partner"),
        pytest.param(lambda p: forged(claims_for(p), algorithm="HS512"), id="algorithm-switch"),
        pytest.param(lambda p: jwt.encode(claims_for(p), None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda p: forged(claims_for(p, iat=int(time.time()) - 7200, exp=int(time.time()) - 61)),
            id="expired-beyond-skew",
        ),
        pytest.param(lambda p: forged(claims_for(p, iss="someone-else")), id="other-issuer"),
        pytest.param(lambda p: forged({k: v for k, v in claims_for(p).items() if k != "exp"}), id="no-expiry"),
    ],
)
async def test_forged_or_expired_tokens_are_4116(client, partner, make_token):
    headers = {"X-Api-Key": partner.api_key, "Authorization": f"Bearer {make_token(partner)}", "X-Correlation-Id": "c"}
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 401, "4116")


async def test_token_expired_within_the_skew_is_accepted(client, partner):
    token = forged(claims_for(partner, iat=int(time.time()) - 7200, exp=int(time.time()) - 30))
    headers = {"X-Api-Key": partner.api_key, "Authorization": f"Bearer {token}", "X-Correlation-Id": "c"}
    assert (await client.get(HISTORY, headers=headers)).status == 200


async def test_token_issued_to_another_api_key_of_the_same_partner_is_4116(client, partner, db_url):
    async with open_storage(db_url) as storage:
        second = await create_credential(storage, partner.partner_id)
    headers = {"X-Api-Key": second.api_key, "Authorization": f"Bearer {await bearer(client, partner)}",
               "X-Correlation-Id": "c"}
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 401, "4116")
    # Rotation: both credentials work with their own tokens.
    headers["Authorization"] = f"Bearer {await bearer(client, second)}"
    assert (await client.get(HISTORY, headers=headers)).status == 200


# -- 400 4119 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("correlation", [None, "", "x" * 256, "abc\tdef", "abc\x85def"])  # C0, C1 controls
async def test_bad_correlation_id_is_4119(client, partner, correlation):
    headers = await partner_headers(client, partner)
    if correlation is None:
        del headers["X-Correlation-Id"]
    else:
        headers["X-Correlation-Id"] = correlation
    response = await client.get(HISTORY, headers=headers)
    assert_error(response, await response.json(), 400, "4119")


async def test_correlation_id_of_255_chars_is_accepted_and_echoed(client, partner):
    headers = await partner_headers(client, partner)
    headers["X-Correlation-Id"] = "c" * 255
    response = await client.get(HISTORY, headers=headers)
    assert response.status == 200
    assert response.headers["X-Correlation-Id"] == "c" * 255


@pytest.mark.parametrize(("name", "status", "code"), [("X-Api-Key", 403, "4115"), ("Authorization", 401, "4116"),
                                                      ("X-Correlation-Id", 400, "4119")])
async def test_a_header_naming_the_caller_or_the_request_sent_twice_is_refused(client, partner, name, status, code):
    """The first copy was read: a proxy in front that read the last one saw another caller, or another key."""
    headers = await partner_headers(client, partner)
    for second in (headers[name], "another"):
        sent = [*((n, v) for n, v in headers.items()), (name, second)]
        response = await client.get(HISTORY, headers=sent)
        assert_error(response, await response.json(), status, code)
        assert "X-Correlation-Id" not in response.headers or name != "X-Correlation-Id"


async def test_correlation_is_checked_before_routing(client, partner):
    headers = await partner_headers(client, partner)
    del headers["X-Correlation-Id"]
    response = await client.get("/v3/unknown", headers=headers)
    assert_error(response, await response.json(), 400, "4119")


# -- routing, size, crash ---------------------------------------------------------------------------


async def test_unknown_route_is_404_in_the_error_shape(client, partner):
    headers = await partner_headers(client, partner)
    response = await client.get("/v3/customers/C1/invoices", headers=headers)
    assert_error(response, await response.json(), 404, "404")
    assert response.headers["X-Correlation-Id"] == headers["X-Correlation-Id"]
    response = await client.get("/nowhere")
    assert_error(response, await response.json(), 404, "404")


async def test_wrong_method_is_405_with_allow(client, partner):
    headers = await partner_headers(client, partner)
    response = await client.delete(HISTORY, headers=headers)
    assert_error(response, await response.json(), 405, "405")
    assert "GET" in response.headers["Allow"]


async def test_body_over_the_limit_is_413(client):
    response = await client.post("/ims/token/v3", data=io.BytesIO(b"x" * (1024 * 1024 + 1)),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(response, await response.json(), 413, "413")


async def test_a_get_with_a_body_over_the_limit_is_413_after_the_credentials(client, partner):
    """A GET does not read its body: one of any size was answered 200."""
    body = io.BytesIO(b"x" * (1024 * 1024 + 1))
    response = await client.get(HISTORY, data=body, headers=await partner_headers(client, partner))
    assert_error(response, await response.json(), 413, "413")
    response = await client.get(HISTORY, data=io.BytesIO(b"x" * (1024 * 1024 + 1)))
    assert_error(response, await response.json(), 403, "4115")  # the checks before it come first
    response = await client.get(HISTORY, data=b"x" * 1024, headers=await partner_headers(client, partner))
    assert response.status == 200
    # The operations' endpoints are not the partner API's: a probe's body is not looked at.
    assert (await client.get("/healthz", data=io.BytesIO(b"x" * (1024 * 1024 + 1)))).status == 200


async def test_unexpected_failure_is_1124_without_internals(client, partner, db_url):
    headers = await partner_headers(client, partner)
    raw_sql(db_url, "ALTER TABLE customers RENAME TO gone")
    response = await client.get(HISTORY, headers=headers)
    text = await response.text()
    assert_error(response, await response.json(), 500, "1124")
    for leak in ("customers", "sqlite", "Traceback", "OperationalError", "File "):
        assert leak not in text


async def test_request_id_is_echoed_on_every_response(client, partner):
    response = await client.get("/healthz", headers={"X-Request-Id": "rid-1"})
    assert response.headers["X-Request-Id"] == "rid-1"
    response = await client.get(HISTORY, headers={"X-Request-Id": "rid-2"})
    assert response.status == 403
    assert response.headers["X-Request-Id"] == "rid-2"
    response = await client.get("/healthz")
    assert uuid.UUID(response.headers["X-Request-Id"])


# -- tokens -----------------------------------------------------------------------------------------


async def test_v3_and_v2_issue_working_tokens(client, partner):
    form = {"grant_type": "client_credentials", "client_id": partner.api_key,
            "client_secret": partner.client_secret, "scope": "openid,AdobeID"}
    v3 = await client.post("/ims/token/v3", data=form)
    v2 = await client.post("/ims/token/v2", data=form)
    assert v3.status == v2.status == 200
    body3, body2 = await v3.json(), await v2.json()
    assert body3["token_type"] == body2["token_type"] == "bearer"
    assert body3["expires_in"] == 86400
    assert body2["expires_in"] == 86400 * 1000
    assert v3.headers["Cache-Control"] == "no-store"
    for body in (body3, body2):
        headers = {"X-Api-Key": partner.api_key, "Authorization": f"Bearer {body['access_token']}",
                   "X-Correlation-Id": "c"}
        assert (await client.get(HISTORY, headers=headers)).status == 200
        claims = jwt.decode(body["access_token"], TEST_SIGNING_KEY, algorithms=["HS256"], issuer="order-gateway")
        assert claims["sub"] == "P1" and claims["client_id"] == partner.api_key
        assert claims["exp"] - claims["iat"] == 86400


async def test_token_parameters_in_query_string_body_wins_and_basic(client, partner):
    query = {"grant_type": "client_credentials", "client_id": partner.api_key, "client_secret": partner.client_secret}
    assert (await client.post("/ims/token/v3", params=query)).status == 200
    # The body wins over the query string.
    wrong = {**query, "client_secret": "wrong"}
    assert (await client.post("/ims/token/v3", params=wrong, data={"client_secret": partner.client_secret})).status == 200
    assert (await client.post("/ims/token/v3", params=query, data={"client_secret": "wrong"})).status == 401
    basic = base64.b64encode(f"{partner.api_key}:{partner.client_secret}".encode()).decode()
    response = await client.post("/ims/token/v2", data={"grant_type": "client_credentials"},
                                 headers={"Authorization": f"Basic {basic}"})
    assert response.status == 200
    for other in ({"data": {"grant_type": "client_credentials", "client_id": "other"}},
                  # Another client id in the query is refused too, though the body's, the same, wins.
                  {"data": {"grant_type": "client_credentials", "client_id": partner.api_key},
                   "params": {"client_id": "other"}}):
        response = await client.post("/ims/token/v3", headers={"Authorization": f"Basic {basic}"}, **other)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_two_ways_of_authenticating_in_one_token_request_are_invalid_request(client, partner):
    """RFC 6749 2.3: one method per request. A second Authorization header was ignored (the first copy
    authenticated), and a client_secret beside Basic credentials too, whatever it held (found by a probe)."""
    basic = base64.b64encode(f"{partner.api_key}:{partner.client_secret}".encode()).decode()
    other = base64.b64encode(b"someone:else").decode()
    grant = {"grant_type": "client_credentials"}
    for headers, data, params in (
        ([("Authorization", f"Basic {basic}"), ("Authorization", f"Basic {other}")], grant, {}),
        ([("Authorization", f"Basic {basic}")], {**grant, "client_secret": "wrong"}, {}),
        ([("Authorization", f"Basic {basic}")], grant, {"client_secret": "wrong"}),
    ):
        response = await client.post("/ims/token/v3", headers=headers, data=data, params=params)
        assert response.status == 400, await response.text()
        assert (await response.json())["error"] == "invalid_request"
    # The same secret in both places names one client, as the same client id does.
    response = await client.post("/ims/token/v3", headers={"Authorization": f"Basic {basic}"},
                                 data={**grant, "client_id": partner.api_key, "client_secret": partner.client_secret})
    assert response.status == 200


async def test_a_file_part_beside_a_field_of_its_name_is_a_parameter_sent_twice(client, partner):
    form = aiohttp.FormData({"grant_type": "client_credentials", "client_id": partner.api_key,
                             "client_secret": partner.client_secret})
    form.add_field("client_secret", b"other", filename="secret.txt")
    response = await client.post("/ims/token/v3", data=form)
    assert response.status == 400  # the file part was left out, and the field authenticated: 200
    assert (await response.json())["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "client_id": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_id": "k", "client_secret": "s"}, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "KEY"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "KEY", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "unknown", "client_secret": "SECRET"}, 401, "invalid_client"),
    ],
)
async def test_token_errors_follow_rfc6749(client, partner, form, status, error):
    form = {k: v.replace("KEY", partner.api_key).replace("SECRET", partner.client_secret) for k, v in form.items()}
    response = await client.post("/ims/token/v3", data=form)
    assert response.status == status
    body = await response.json()
    assert body["error"] == error and body["error_description"]


@pytest.mark.parametrize("credentials", ["ééx", "a2V5OnPDqWNyZXQ=é", "密钥"])
async def test_basic_credentials_that_are_not_ascii_are_invalid_request(client, partner, credentials):
    response = await client.post("/ims/token/v3", data={"grant_type": "client_credentials"},
                                 headers={"Authorization": f"Basic {credentials}"})
    assert response.status == 400  # non-ASCII text was a 500: b64decode refuses it with a ValueError
    assert (await response.json())["error"] == "invalid_request"
