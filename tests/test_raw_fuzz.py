"""Random malformed requests through raw sockets against a real gateway process on a loopback port: broken
request lines, header floods, slow and truncated bodies, unknown encodings, deep and repeated JSON, huge
numbers. Every answer is the API's (its error shape, or a token endpoint's RFC 6749 error, or a 2xx/3xx),
carries X-Request-Id, is never a 5xx other than 503, and the process grows by under 50 MB.

RAW_FUZZ_REQUESTS sets the count (`make test` ~300; `make fuzz` 10,000), RAW_FUZZ_SEED the seed; the run
stops after RAW_FUZZ_SECONDS whatever the count."""
from __future__ import annotations

import concurrent.futures
import gzip
import os
import random
import time
import zlib
from collections.abc import Callable

import orjson
from conftest import seed_with_cli, sqlite_only
from raw_http import Answer, exchange, gateway

REQUESTS = int(os.environ.get("RAW_FUZZ_REQUESTS", "300"))
SEED = int(os.environ.get("RAW_FUZZ_SEED", str(int(time.time()))))
MAX_SECONDS = float(os.environ.get("RAW_FUZZ_SECONDS", "1500"))
WORKERS = 8
MAX_RSS_GROWTH = 50 * 1024 * 1024
BODY_TIMEOUT = "1"
PATHS = ["/v3/customers/C1/orders", "/v3/customers/C1/orders/1000000001", "/ims/token/v3", "/healthz",
         "/v3/customers/NOPE/orders", "/nowhere", "/v3"]


class Case:
    """One request: the bytes sent at once, the bytes then sent one by one, and whether the client hangs up
    without waiting for an answer."""

    def __init__(self, data: bytes, drip: bytes = b"", hang_up: bool = False) -> None:
        self.data, self.drip, self.hang_up = data, drip, hang_up


def _head(rnd: random.Random, auth: bytes, method: bytes = b"POST", path: str | None = None,
          extra: bytes = b"") -> bytes:
    target = (path or rnd.choice(PATHS)).encode()
    return method + b" " + target + b" HTTP/1.1\r\nHost: gw\r\n" + auth + extra


def _json_body(rnd: random.Random) -> bytes:
    depth = rnd.choice([10, 33, 250, 300, 1000, 100_000])
    return rnd.choice([
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b"{" + b",".join(b'"orderType":"NEW"' for _ in range(rnd.randint(2, 20000))) + b"}",
        b'{"orderType":"NEW","currencyCode":"USD","lineItems":[{"extLineItemNumber":' + b"9" * rnd.randint(20, 50000)
        + b',"offerId":"O","quantity":1e999999}]}',
        b'{"lineItems":[' + b",".join(b'{"quantity":-1}' for _ in range(rnd.randint(1, 5000))) + b"]}",
        b'{"x":"\\ud800\\u0000' + os.urandom(rnd.randint(0, 64)).hex().encode() + b'"}',
        b"NaN", b"", b"\xff\xfe{}", b'{"a":1}' * 3,
    ])


def _json_case(rnd: random.Random, auth: bytes) -> Case:
    body = _json_body(rnd)
    method = rnd.choice([b"POST", b"PATCH"])
    path = "/v3/customers/C1/orders" if method == b"POST" else "/v3/customers/C1/orders/1000000001"
    extra = b"Content-Type: application/json\r\nX-Correlation-Id: fz-%d\r\n" % rnd.getrandbits(48)
    return Case(_head(rnd, auth, method, path, extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _encoding_case(rnd: random.Random, auth: bytes) -> Case:
    plain = b'{"orderType":"NEW"}'
    coding, body = rnd.choice([
        (b"gzip", gzip.compress(plain)), (b"deflate", zlib.compress(plain)), (b"gzip", b"not gzip"),
        (b"gzip", gzip.compress(b"0" * 5_000_000)), (b"br", plain), (b"zstd", plain), (b"xyz", plain),
        (b"gzip, br", plain), (b"identity", plain), (b"", plain), (b"deflate", os.urandom(64)),
    ])
    extra = b"Content-Encoding: " + coding + b"\r\nX-Correlation-Id: fz-enc\r\nContent-Type: application/json\r\n"
    return Case(_head(rnd, auth, b"POST", None, extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _request_line_case(rnd: random.Random, auth: bytes) -> Case:
    method = rnd.choice([b"GET", b"POST", b"PATCH", b"DELETE", b"G\x00T", b"", b"PRI", b"\x16\x03\x01",
                         os.urandom(rnd.randint(1, 12)), b"GET" * 3000])
    target = rnd.choice([rnd.choice(PATHS).encode(), b"*", b"", b"http://gw/healthz", b"/%zz/%00",
                         b"/" + os.urandom(rnd.randint(1, 40)), b"/" + b"a" * rnd.randint(8000, 9000),
                         b"/v3/customers/C1/orders?limit=" + b"9" * rnd.randint(1, 5000)])
    version = rnd.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 extra", b"", b"HTTP/1.1\x00"])
    return Case(method + b" " + target + b" " + version + b"\r\nHost: gw\r\n" + auth + b"\r\n")


def _header_flood_case(rnd: random.Random, auth: bytes) -> Case:
    headers = []
    for i in range(rnd.choice([5, 50, 99, 100, 101, 140])):
        name = rnd.choice([b"X-F-%d" % i, b"X F", b"X-\x01", b"", b"X-" + b"n" * rnd.randint(1, 9000)])
        value = rnd.choice([b"v", b"v" * rnd.randint(1, 9000), os.urandom(rnd.randint(1, 30)), b"a\rb"])
        headers.append(name + b": " + value.replace(b"\n", b"") + b"\r\n")
    return Case(_head(rnd, auth, b"GET") + b"".join(headers) + b"\r\n")


def _body_framing_case(rnd: random.Random, auth: bytes) -> Case:
    head = _head(rnd, auth, b"POST", None, b"X-Correlation-Id: fz-frame\r\n")
    body = b'{"orderType":"NEW"}'
    return rnd.choice([
        Case(head + b"Transfer-Encoding: chunked\r\n\r\n" + rnd.choice([b"zz\r\n", b"5\r\nab", b"-1\r\n\r\n"])),
        Case(head + b"Content-Length: %d\r\n\r\n" % (len(body) + 10) + body),  # never completed: 408
        Case(head + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}"),
        Case(head + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        Case(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:3], drip=body[3:8]),  # slow: 408
        Case(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:5], hang_up=True),
        Case(os.urandom(rnd.randint(1, 2000)) + b"\r\n\r\n"),
    ])


KINDS: list[Callable[[random.Random, bytes], Case]] = [
    _json_case, _encoding_case, _request_line_case, _header_flood_case, _body_framing_case,
]


def _check(case: Case, answer: Answer | None) -> str | None:
    """What is wrong with the answer, or None."""
    if answer is None:
        return None if case.hang_up else "no answer"
    if answer.status >= 500 and answer.status != 503:
        return f"status {answer.status}"
    if "x-request-id" not in answer.headers:
        return "no X-Request-Id"
    if answer.status < 400 or answer.is_error_shape():
        return None
    body = orjson.loads(answer.body) if answer.body[:1] == b"{" else None
    return None if isinstance(body, dict) and "error" in body else f"not the error shape: {answer.body[:200]!r}"


def _run(port: int, case: Case) -> str | None:
    answer = exchange(port, case.data, drip=case.drip, every=0.4, timeout=20, close_after_send=case.hang_up)
    problem = _check(case, answer)
    return None if problem is None else f"{problem} for {case.data[:160]!r}"


def test_raw_fuzz(db_url, tmp_path):
    sqlite_only(db_url, "malformed requests are refused before any query: the backend plays no part, and the "
                        "suite's time is better spent elsewhere")
    partner = seed_with_cli(db_url, tmp_path)
    rnd = random.Random(SEED)
    with gateway(db_url, tmp_path, "--body-timeout-seconds", BODY_TIMEOUT) as running:
        auth = _auth(running.port, partner)
        cases = [rnd.choice(KINDS)(rnd, auth if rnd.random() < 0.8 else b"") for _ in range(REQUESTS)]
        deadline = time.monotonic() + MAX_SECONDS
        problems: list[str] = []
        rss_before, sent = 0, 0
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            while sent < len(cases) and time.monotonic() < deadline:
                if sent == 100 or (sent == 0 and len(cases) <= 100):
                    rss_before = running.rss_bytes()  # after a warm-up: caches and pools filled
                batch = cases[sent : sent + 100]
                problems += [p for p in pool.map(lambda c: _run(running.port, c), batch) if p]
                sent += len(batch)
        growth = running.rss_bytes() - rss_before
    assert not problems, f"seed {SEED}: {len(problems)} problems, first: {problems[:3]}"
    assert sent == len(cases), f"only {sent} of {len(cases)} requests within {MAX_SECONDS} s"
    assert growth < MAX_RSS_GROWTH, f"seed {SEED}: RSS grew by {growth} bytes"
    assert not [line for line in running.log_lines() if line.get("level") == "error"], f"seed {SEED}"


def _auth(port: int, partner: dict[str, str]) -> bytes:
    form = f"grant_type=client_credentials&client_id={partner['apiKey']}&client_secret={partner['clientSecret']}"
    request = (b"POST /ims/token/v3 HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Content-Length: %d\r\n\r\n" % len(form) + form.encode())
    answer = exchange(port, request)
    assert answer is not None and answer.status == 200, answer
    token = orjson.loads(answer.body)["access_token"]
    return f"X-Api-Key: {partner['apiKey']}\r\nAuthorization: Bearer {token}\r\n".encode()


def test_json_nested_past_254_levels_is_refused_not_a_server_error(db_url, tmp_path):
    """orjson reads 1024 levels, but the fingerprint's encoder stops at 254: the body layer refuses first."""
    partner = seed_with_cli(db_url, tmp_path)
    with gateway(db_url, tmp_path) as running:
        body = b'{"a":' * 300 + b"1" + b"}" * 300
        head = _head(random.Random(0), _auth(running.port, partner), b"POST", "/v3/customers/C1/orders",
                     b"Content-Type: application/json\r\nX-Correlation-Id: deep\r\n")
        answer = exchange(running.port, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer is not None and answer.status == 400 and orjson.loads(answer.body)["code"] == "1117"
