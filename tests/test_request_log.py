"""One JSON log line per request, with the named fields and no secrets, from a real server process."""
from __future__ import annotations

import json

import aiohttp
from multidict import CIMultiDict
from conftest import cli, customer_record, order_record, raw_sql, reseller_record, server_process

FIELDS = {
    "timestamp", "level", "event", "method", "path", "route", "status", "duration_ms", "request_id",
    "correlation_id", "partner_id", "api_key_id", "customer_id", "error_code", "remote", "user_agent",
}


async def _token(http: aiohttp.ClientSession, partner: dict[str, str]) -> str:
    form = {"grant_type": "client_credentials", "client_id": partner["apiKey"], "client_secret": partner["clientSecret"]}
    async with http.post("/ims/token/v3", data=form) as response:
        return str((await response.json())["access_token"])


async def test_one_json_line_per_request_without_secrets(db_url, tmp_path, load):
    partner = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    await load([reseller_record("R1", "P1"), customer_record("C1", "R1"),
                order_record("1000000001", "C1", "2024-01-02T03:04:05Z")])
    log_path = tmp_path / "server.log"
    sent = []
    with server_process(db_url, log_path=log_path) as base:
        async with aiohttp.ClientSession(base) as http:
            token = await _token(http, partner)
            sent.append(("POST", "/ims/token/v3", 200))
            good = {"X-Api-Key": partner["apiKey"], "Authorization": f"Bearer {token}",
                    "X-Correlation-Id": "corr-1", "X-Request-Id": "req-1", "User-Agent": "log-test/1.0"}
            for path, headers, status in [
                ("/v3/customers/C1/orders", good, 200),
                ("/v3/customers/C1/orders/1000000001", good, 200),
                ("/v3/customers/C1/orders?limit=0", good, 400),
                ("/v3/customers/C1/orders", {**good, "X-Api-Key": "wrong"}, 403),
                ("/v3/customers/C1/orders", {k: v for k, v in good.items() if k != "Authorization"}, 401),
                ("/v3/customers/NOPE/orders", good, 404),
            ]:
                async with http.get(path, headers=headers) as response:
                    assert response.status == status
                sent.append(("GET", path.split("?")[0], status))
            for probe in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes have their line too
                async with http.get(probe) as response:
                    assert response.status == 200
                sent.append(("GET", probe, 200))
            raw_sql(db_url, "ALTER TABLE customers RENAME TO gone")
            async with http.get("/v3/customers/C1/orders", headers=good) as response:
                assert response.status == 500
            sent.append(("GET", "/v3/customers/C1/orders", 500))

    text = log_path.read_text()
    for secret in (partner["apiKey"], partner["clientSecret"], token, token.split(".")[2]):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == sent
    for record in requests:
        assert FIELDS <= set(record), FIELDS - set(record)
        assert record["remote"] == "127.0.0.1"
        assert isinstance(record["duration_ms"], (int, float)) and record["duration_ms"] >= 0
    ok = requests[1]
    assert ok["level"] == "info"
    assert ok["route"] == "/v3/customers/{customerId}/orders"
    assert ok["request_id"] == "req-1" and ok["correlation_id"] == "corr-1"
    assert ok["partner_id"] == "P1" and ok["customer_id"] == "C1" and ok["user_agent"] == "log-test/1.0"
    assert ok["api_key_id"] and ok["api_key_id"] not in partner["apiKey"]
    assert ok["timestamp"].endswith("Z")
    assert requests[3]["error_code"] == "1132"
    assert requests[4]["error_code"] == "4115"
    assert requests[5]["error_code"] == "4117"
    assert requests[6]["error_code"] == "1116"
    crash = requests[-1]
    assert crash["level"] == "error" and crash["error_code"] == "1124"
    frames = json.dumps(crash["exception"])
    assert "customers" in frames and '"locals"' not in frames  # the database's own complaint, without locals


async def test_trace_id_and_the_listening_and_stopped_events(db_url, tmp_path):
    log_path = tmp_path / "server.log"
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    with server_process(db_url, log_path=log_path) as base:
        async with aiohttp.ClientSession(base) as http:
            valid = f"00-{trace_id}-b7ad6b7169203331-01"
            # Sent twice, even the same, it is none (W3C Trace Context's own tests): which copy holds?
            twice = CIMultiDict([("traceparent", valid), ("traceparent", valid)])
            for traceparent in (valid, "00-" + "0" * 32 + "-b7ad6b7169203331-01", "not a traceparent", twice):
                headers = traceparent if isinstance(traceparent, CIMultiDict) else {"traceparent": traceparent}
                async with http.get("/v3/customers/C1/orders", headers=headers) as response:
                    assert response.status == 403
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert events[0] == "listening" and events[-1] == "stopped"
    listening = lines[0]
    assert listening["address"] == base and listening["version"] and listening["database"] in ("sqlite", "postgresql")
    assert "postgres@" not in json.dumps(listening) and "?" not in listening["database"]
    requests = [line for line in lines if line["event"] == "request"]
    assert requests[0]["trace_id"] == trace_id
    assert all("trace_id" not in line for line in requests[1:])  # an all-zero trace id is invalid


MARKER = "Zq~Body~Marker"
# Token bodies that are no readable form, each once a 500 whose logged exception quoted the body.
UNREADABLE = [
    *((f"application/x-www-form-urlencoded; charset={charset}",
       f"~{MARKER}=1&grant_type=client_credentials&client_id=K&client_secret=S&{MARKER}=%C3%A9".encode())
      for charset in ("punycode", "undefined", "idna")),  # punycode quoted '~'
    *(("multipart/form-data; boundary=b",
       b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n' + header + b"\r\n\r\nx\r\n--b--\r\n")
      for header in (MARKER.encode(), b"X-Long: " + MARKER.encode() * 1200)),  # a malformed or too long line
]


async def test_a_token_body_that_is_no_readable_form_is_refused_and_nothing_of_it_logged(db_url, tmp_path):
    partner = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    good = f"grant_type=client_credentials&client_id={partner['apiKey']}&client_secret={partner['clientSecret']}"
    log_path = tmp_path / "server.log"
    with server_process(db_url, log_path=log_path) as base:
        async with aiohttp.ClientSession(base) as http:
            # Refused before a codec reads the body: not a charset a form is written in.
            other = [(f"application/x-www-form-urlencoded; charset={charset}", UNREADABLE[0][1])
                     for charset in ("unicode_escape", "utf-7", "no-such-charset")]
            for content_type, body in UNREADABLE + other:
                async with http.post("/ims/token/v3", data=body, headers={"Content-Type": content_type}) as response:
                    assert response.status == 400, (content_type, await response.text())
                    assert (await response.json())["error"] == "invalid_request"
            for charset in ("UTF-8", "utf8", "us-ascii", "ISO-8859-1", "windows-1252"):
                headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
                async with http.post("/ims/token/v3", data=good, headers=headers) as response:
                    assert response.status == 200, (charset, await response.text())
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert [(line["status"], line["level"]) for line in requests] == [(400, "info")] * 8 + [(200, "info")] * 5
    assert not [line for line in lines if "exception" in line or line["level"] == "error"]
    assert MARKER not in text and "'~'" not in text


async def test_token_failures_are_logged_with_their_oauth_error(db_url, tmp_path):
    partner = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    good = {"grant_type": "client_credentials", "client_id": partner["apiKey"], "client_secret": partner["clientSecret"]}
    sent = [
        ("/ims/token/v3", good, 200, None),
        ("/ims/token/v3", {**good, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ("/ims/token/v2", {"client_id": partner["apiKey"]}, 400, "invalid_request"),  # no grant_type
        ("/ims/token/v2", {"grant_type": "client_credentials"}, 401, "invalid_client"),  # no credentials
        *[("/ims/token/v3", {**good, "client_secret": "wrong"}, 401, "invalid_client")] * 10,
        ("/ims/token/v2", good, 429, "invalid_client"),  # that client id is locked out
    ]
    log_path = tmp_path / "server.log"
    with server_process(db_url, log_path=log_path) as base:
        async with aiohttp.ClientSession(base) as http:
            for path, form, status, _ in sent:
                async with http.post(path, data=form) as response:
                    assert response.status == status, await response.text()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    # Each was logged with "error_code": null.
    assert [(r["path"], r["status"], r["error_code"]) for r in requests] == [
        (path, status, code) for path, _, status, code in sent]


async def test_a_refused_correlation_id_is_not_logged(tmp_path):
    """A value refused as an X-Correlation-Id (4119: over 255 characters, a control character, not UTF-8) is
    bytes of a header, not the request's name: its line has `correlation_id` null."""
    from raw_http import exchange

    db_url = f"sqlite:///{tmp_path}/g.db"
    partner = json.loads(cli(db_url, "partners", "create", "--name", "N", "--partner-id", "P1").stdout)
    log_path = tmp_path / "server.log"
    refused = [b"L" * 300, b"abc\x01Hidden", b"\xff\xfeHidden", b"with\x7fHidden"]
    with server_process(db_url, log_path=log_path) as base:
        async with aiohttp.ClientSession(base) as http:
            token = await _token(http, partner)
        port = int(base.rsplit(":", 1)[1])
        head = (f"GET /v3/customers/C1/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: {partner['apiKey']}\r\n"
                f"Authorization: Bearer {token}\r\n").encode()
        for value in refused:
            answer = exchange(port, head + b"X-Correlation-Id: " + value + b"\r\n\r\n")
            assert answer is not None and answer.json()["code"] == "4119", answer
    text = log_path.read_text()
    assert "Hidden" not in text and "L" * 256 not in text
    lines = [json.loads(line) for line in text.splitlines() if '"4119"' in line]
    assert len(lines) == len(refused) and all(line["correlation_id"] is None for line in lines)
