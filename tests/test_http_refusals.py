"""Requests the HTTP layer itself refuses, and the 499 rule of the request log, against a real gateway process
through raw sockets: aiohttp_client (and any HTTP client library) cannot send these requests, since it
builds well-formed requests and refuses oversized or malformed ones before they leave.

Each refusal is in the API's error shape, carries X-Request-Id and has its one `request` log line; the LOG
test sends credentials through every kind of refused request and finds none of their bytes in the output."""
from __future__ import annotations

import base64
import gzip
import struct
import zlib
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import seed_with_cli
from raw_http import Answer, Gateway, exchange, gateway

BODY_TIMEOUT = "1"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("refusals")
    with gateway(f"sqlite:///{tmp}/gateway.db", tmp, "--body-timeout-seconds", BODY_TIMEOUT) as running:
        yield running


def get(target: bytes = b"/healthz", headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\n" + headers + b"\r\n"


def post(body: bytes, headers: bytes = b"", target: bytes = b"/ims/token/v3") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body)
    return b"POST " + target + b" HTTP/1.1\r\nHost: gw\r\n" + FORM + length + headers + b"\r\n" + body


def refused(served: Gateway, request: bytes, status: int, code: str, **kwargs: Any) -> Answer:
    answer = exchange(served.port, request, **kwargs)
    assert answer is not None
    assert answer.status == status, answer
    assert answer.is_error_shape(code), answer.body
    assert answer.headers["content-type"].startswith("application/json")
    request_id = answer.headers["x-request-id"]
    lines = [line for line in served.log_lines() if line.get("request_id") == request_id]
    assert [(line["event"], line["status"], line["error_code"], line["level"]) for line in lines] == [
        ("request", status, code, "info")
    ]
    return answer


def test_a_header_line_over_8_kib_is_431(served):
    refused(served, get(headers=b"X-Api-Key: " + b"k" * 8200 + b"\r\n"), 431, "431")
    refused(served, get(headers=b"X-" + b"n" * 8200 + b": v\r\n"), 431, "431")


def test_header_fields_of_8_kib_in_all_are_accepted(served):
    line = b"X-Pad: " + b"v" * (8192 - len(b"Host: gw\r\n") - len(b"X-Pad: \r\n"))
    answer = exchange(served.port, get(headers=line + b"\r\n"))
    assert answer is not None and answer.status == 200


def test_all_header_fields_together_over_8_kib_is_431(served):
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(9))
    refused(served, get(headers=fields), 431, "431")


@pytest.mark.parametrize("fields", [
    b"X-A:" + b" " * 9000 + b"v\r\n",  # blanks before a value: stripped, and never counted
    b"X-A: v" + b" " * 9000 + b"\r\n",  # after it
    b"X-A: v" + b" " * 4200 + b"\r\nX-B: v" + b" " * 4200 + b"\r\n",  # two, over 8 KiB together
])
def test_header_fields_padded_with_blanks_over_8_kib_are_431(served, fields):
    """The limits counted names and values as the parser keeps them, stripped of the blanks around a value:
    a header line of 8 MB of spaces was served (found by a probe)."""
    refused(served, get(headers=fields), 431, "431")


@pytest.mark.parametrize("line_bytes, status", [(8192, 200), (8193, 431)])
def test_a_header_line_is_counted_as_sent_without_the_optional_space(served, line_bytes, status):
    """`X-A:value` has no space after the colon: 8,192 bytes of such a line (its CRLF included) were 431, as
    if every line had one."""
    line = b"X-A:" + b"a" * (line_bytes - len(b"X-A:\r\n")) + b"\r\n"
    answer = exchange(served.port, b"GET /healthz HTTP/1.0\r\n" + line + b"\r\n")
    assert answer is not None and answer.status == status


def test_a_hundred_header_fields_without_blanks_within_8_kib_are_accepted(served):
    fields = b"".join(b"X%02d:%s\r\n" % (i, b"v" * 75) for i in range(100))  # 8,100 bytes
    answer = exchange(served.port, b"GET /healthz HTTP/1.0\r\n" + fields + b"\r\n")
    assert answer is not None and answer.status == 200


def test_more_than_100_header_fields_is_431(served):
    many = b"".join(b"X-%d: v\r\n" % i for i in range(100))  # with Host, 101
    refused(served, get(headers=many), 431, "431")
    answer = exchange(served.port, get(headers=many[: -len(b"X-99: v\r\n")]))  # 100 in all
    assert answer is not None and answer.status == 200


def test_a_request_target_over_8_kib_is_414(served):
    refused(served, get(b"/v3/customers/" + b"c" * 8200 + b"/orders"), 414, "414")


@pytest.mark.parametrize("coding", [b"br", b"zstd", b"compress", b"xyz", b"gzip, br", b"identity, x", b"gzip, gzip",
                                    b"deflate, gzip", b"gzip, identity", b"identity, deflate"])
def test_a_content_encoding_other_than_gzip_deflate_identity_is_415(served, coding):
    answer = refused(served, post(b"grant_type=x", b"Content-Encoding: " + coding + b"\r\n"), 415, "415")
    assert b"Brotli" not in answer.body and b"install" not in answer.body


def test_a_transfer_coding_other_than_chunked_is_refused(served):
    """aiohttp read `gzip, chunked` as chunked alone: the handlers got the body still compressed."""
    body = gzip.compress(b"grant_type=client_credentials")
    chunked = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
    request = b"POST /ims/token/v3 HTTP/1.1\r\nHost: gw\r\n" + FORM + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
    refused(served, request + chunked, 400, "1117")


def test_a_get_with_an_unknown_content_encoding_is_415_too(served):
    refused(served, get(b"/v3/customers/C1/orders", b"Content-Encoding: br\r\n"), 415, "415")


@pytest.mark.parametrize("coding", [b"br", b"zstd", b"gzip, br", b"compress"])
def test_a_refused_content_encoding_echoes_the_clients_ids(served, coding):
    """aiohttp's parser refuses br and zstd itself, before any header reaches the gateway, when their decoders
    are missing: the answer could not carry the client's ids. With them installed, the gateway's own check
    answers, as it does for every other coding."""
    request_id = b"rid-415-" + coding.replace(b", ", b"-")
    ids = b"X-Request-Id: " + request_id + b"\r\nX-Correlation-Id: corr-415\r\n"
    answer = refused(served, get(b"/v3/customers/C1/orders", ids + b"Content-Encoding: " + coding + b"\r\n"),
                     415, "415")
    assert answer.headers["x-request-id"] == request_id.decode()
    assert answer.headers["x-correlation-id"] == "corr-415"


def test_a_body_not_received_in_time_is_408_and_the_connection_closed(served):
    request = post(b"grant_type=client_credentials")
    head, body = request[: -len(b"grant_type=client_credentials")], b"grant_type=client_credentials"
    answer = refused(served, head + body[:2], 408, "408", drip=body[2:], every=0.3)
    assert answer.closed and answer.headers.get("connection", "").lower() == "close"


def test_a_body_still_arriving_after_its_answer_is_cut_at_the_body_timeout(served):
    """Refused before its body is read (no API key), the request is answered at once; the rest of its body,
    one byte at a time, held the connection for aiohttp's 10 s of lingering, and a body finished after the
    timeout let the connection serve the next request (found by a probe)."""
    head = b"POST /v3/customers/C1/orders HTTP/1.1\r\nHost: gw\r\nContent-Length: 60\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head + b" ")
        received, closed_at = b"", None
        while closed_at is None and time.monotonic() - started < 8:
            if select.select([sock], [], [], 0.2)[0]:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed_at = time.monotonic() - started
                received += chunk
            else:
                try:
                    sock.sendall(b" ")
                except OSError:
                    closed_at = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 403 ")
    assert closed_at is not None and closed_at < float(BODY_TIMEOUT) + 1.5, closed_at


def test_a_head_not_received_in_time_is_408_and_the_connection_closed(served):
    """A client that sends a header field now and then, or stops halfway through the head, holds the
    connection no longer than the body timeout (it was the keep-alive timeout, 75 s from the connection's
    start, and without an answer)."""
    head = get(headers=b"X-Request-Id: slow-head\r\n")[: -len(b"\r\n")]  # the head's last line never comes
    started = time.monotonic()
    answer = refused(served, head, 408, "408", drip=b"X-Pad: v\r\n" * 40, every=0.2)
    assert answer.closed and time.monotonic() - started < float(BODY_TIMEOUT) + 2
    assert "header fields" in answer.json()["message"] and answer.headers["x-request-id"] == "slow-head"
    stalled = refused(served, b"GET /healthz HTTP/1.1\r\nHo", 408, "408")
    assert stalled.closed


def test_a_head_in_time_then_a_slow_client_between_requests_is_not_refused(served):
    """The deadline is the head's: a keep-alive connection idle between requests is the keep-alive timeout's
    business, and a head that arrives in pieces within the deadline is served."""
    answer = exchange(served.port, b"GET /healthz HTTP/1.1\r\n", drip=b"Host: gw\r\n\r\n", every=0.05)
    assert answer is not None and answer.status == 200


def test_empty_lines_between_requests_start_no_deadline(served):
    """The parser skips empty lines before a request (RFC 9112 2.2), and some clients send one after a body:
    an idle connection that got one used to be answered 408 unasked, which the client then read as the
    answer to its next request."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(get())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"\r\n")
        time.sleep(float(BODY_TIMEOUT) + 0.5)
        assert select.select([sock], [], [], 0)[0] == []  # nothing arrived meanwhile
        sock.sendall(get())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_keep_alive_connection_idle_after_a_request_gets_no_408(served):
    """The head's deadline never outlives the head: a connection idle after an answer (here to a request with
    a body, whose bytes may arrive while it is handled) gets nothing unasked, and serves its next request."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        form = b"grant_type=client_credentials&client_id=x&client_secret=y"
        request = post(form)
        sock.sendall(request[: -len(form)])
        time.sleep(0.1)
        sock.sendall(form)  # the body's bytes arrive while the request is handled
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        time.sleep(float(BODY_TIMEOUT) + 0.5)
        assert select.select([sock], [], [], 0)[0] == []  # nothing arrived meanwhile
        sock.sendall(get())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def _gzip_with_extra_field(payload: bytes, extra: bytes) -> bytes:
    """A gzip member (RFC 1952) whose header carries `extra` (FEXTRA), guarded by a header CRC (FHCRC)."""
    header = b"\x1f\x8b\x08\x06" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(wbits=-15)
    data = deflate.compress(payload) + deflate.flush()
    return header + data + struct.pack("<II", zlib.crc32(payload), len(payload))


def test_body_bytes_that_look_like_an_id_field_are_never_rewritten(served):
    """Control characters in the ids' header fields are rewritten before parsing; the same bytes in a body
    (here inside a gzip header's extra field, which its CRC guards) are left as they are."""
    body = _gzip_with_extra_field(b"grant_type=password", b"\r\nX-Request-Id: a\x01b\r\n")
    assert gzip.decompress(body) == b"grant_type=password"
    answer = exchange(served.port, post(body, b"Content-Encoding: gzip\r\n"))
    assert answer is not None and answer.status == 400
    assert answer.json()["error"] == "unsupported_grant_type"  # read as sent: not 1117, a body it could not read


def _all_answers(port: int, *sends: bytes) -> bytes:
    """Everything the server sends back on one connection until it closes it; `sends` go out 0.2 s apart."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for data in sends:
            sock.sendall(data)
            time.sleep(0.2)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_pipelined_requests_have_their_ids_checked_each(served):
    """A control character in an id of a request pipelined behind another (in the same read) makes that id
    refusable, as in a first request: the parser refused the whole read, the first request included."""
    first = get(b"/healthz", b"X-Request-Id: pipe-1\r\n")
    second = get(b"/healthz", b"X-Request-Id: x\x01y\r\nConnection: close\r\n")
    answers = _all_answers(served.port, first + second)
    assert answers.count(b"HTTP/1.1 200") == 2, answers[:300]
    assert b"X-Request-Id: pipe-1" in answers and b"x\x01y" not in answers


def test_a_blank_line_split_across_reads_still_ends_the_head(served):
    """The end of a head that comes in two reads (its last CRLF in the second) is still found: the body after
    it is not taken for header fields and rewritten."""
    body = _gzip_with_extra_field(b"grant_type=password", b"\r\nX-Request-Id: a\x01b\r\n")
    request = post(body, b"Content-Encoding: gzip\r\nConnection: close\r\n")
    split = request.index(b"\r\n\r\n") + 2
    answers = _all_answers(served.port, request[:split], request[split:])
    assert b"unsupported_grant_type" in answers, answers[:300]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /a\x01b HTTP/1.1\r\nHost: gw\r\n\r\n",  # a control character in the path
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # TLS on the plain port
        b"GET / HTTP/9.9\r\nHost: gw\r\n\r\n",
        b"GET /v3/customers/C1/orders HTTP/2.0\r\nHost: gw\r\n\r\n",  # a version the parser takes
        b"GET /v3/customers/C1/orders\r\nHost: gw\r\n\r\n",  # no version: read as HTTP/0.9
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"POST /ims/token/v3 HTTP/1.1\r\nHost: gw\r\nContent-Length: abc\r\n\r\n",
        b"POST /ims/token/v3 HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: gw\r\nBad Header\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ],
)
def test_any_other_malformed_request_is_400_1117(served, request_bytes):
    refused(served, request_bytes, 400, "1117")


def test_a_client_that_goes_away_mid_body_is_499_client_closed_at_info(served):
    before = len(served.log_lines())
    exchange(served.port, post(b"x" * 10)[:-5], close_after_send=True)
    exchange(served.port, post(b'{"a": 1}', target=b"/v3/customers/C1/orders")[:-3], close_after_send=True)
    lines = _wait_for_lines(served, before + 2)
    gone = [line for line in lines[before:] if line.get("event") == "request"]
    # The two connections end concurrently: their lines may come in either order.
    assert sorted((line["status"], line["error_code"], line["level"]) for line in gone) == [
        (403, "4115", "info"),  # credentials are checked before the body is read
        (499, "client_closed", "info"),
    ]
    assert not any("exception" in line for line in lines)


def _wait_for_lines(served: Gateway, count: int) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + 5
    while len(lines := served.log_lines()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


def _secret_pieces(secrets: list[str]) -> set[str]:
    """Each secret, every 16-character piece of it, and the same of its base64 forms."""
    forms = list(secrets)
    for secret in secrets:
        forms.append(base64.b64encode(secret.encode()).decode())
    forms.append(base64.b64encode(f"{secrets[0]}:{secrets[1]}".encode()).decode())
    return {form[i : i + 16] for form in forms for i in range(max(1, len(form) - 15))}


def _secret_requests(key: str, secret: str, token: str) -> list[bytes]:
    k, s, t = key.encode(), secret.encode(), token.encode()
    basic = b"Basic " + base64.b64encode(k + b":" + s)
    pad = b"A" * 9000
    form = b"grant_type=client_credentials&client_id=" + k + b"&client_secret=" + s
    return [
        get(headers=b"X-Api-Key: " + k + pad + b"\r\n"),
        get(headers=b"X-Api-Key: " + pad + k + b"\r\n"),
        post(form, b"Authorization: " + basic + pad + b"\r\n"),
        get(headers=b"Authorization: Bearer " + t + pad + b"\r\n"),
        get(headers=b"".join(b"X-%d: %s %s %s\r\n" % (i, k, s, t) for i in range(120))),
        get(b"/v3/customers?client_secret=" + s + b"&key=" + k + b"&" + pad),
        get(b"/v3/" + s + b"\x01" + k),
        post(form, b"Content-Encoding: br\r\n"),
        post(form, b"Content-Encoding: gzip\r\n"),  # not gzip at all
        post(form, b"Content-Encoding: " + s + b"\r\n"),
        post(form, b"Transfer-Encoding: chunked\r\n").replace(b"Content-Length", b"X-Was"),
        b"GET /" + k + b" HTTP/9.9\r\nAuthorization: " + basic + b"\r\n\r\n",
        b"\x16\x03\x01" + s + b"\r\n" + t + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: gw\r\nX-Api-Key\x01: " + k + b"\r\n\r\n",
        b"POST /ims/token/v3 HTTP/1.1\r\nHost: gw\r\nContent-Length: " + s + b"\r\n\r\n" + form,
        b"POST /v3/customers/C1/orders HTTP/1.1\r\nHost: gw\r\nX-Api-Key: " + k + b"\r\nAuthorization: Bearer "
        + t + b"\r\nX-Correlation-Id: c\r\nContent-Length: 9999\r\n\r\n{\"secret\": \"" + s,
    ]


def test_control_characters_in_the_ids_get_the_checks_answers(db_url, tmp_path):
    """A control character in X-Correlation-Id is 4119 after the credential checks, not a malformed request
    (1117); one in X-Request-Id makes it absent. The client's other id still comes back."""
    partner = seed_with_cli(db_url, tmp_path)
    with gateway(db_url, tmp_path) as running:
        credentials = b"X-Api-Key: %s\r\nAuthorization: Bearer %s\r\n" % (
            partner["apiKey"].encode(), _token(running, partner).encode())
        for control in (b"\x00", b"\x01", b"\x1f", b"\x7f"):
            sent = b"X-Correlation-Id: a" + control + b"b\r\nX-Request-Id: rid-cc\r\n"
            answer = exchange(running.port, get(b"/v3/customers/C1/orders", credentials + sent))
            assert answer is not None and answer.is_error_shape("4119") and answer.status == 400, answer
            assert answer.headers["x-request-id"] == "rid-cc" and "x-correlation-id" not in answer.headers
            anonymous = exchange(running.port, get(b"/v3/customers/C1/orders", sent))
            assert anonymous is not None and anonymous.status == 403 and anonymous.is_error_shape("4115")
            sent = b"X-Correlation-Id: cid-ok\r\nX-Request-Id: r" + control + b"d\r\n"
            answer = exchange(running.port, get(b"/v3/customers/C1/orders", credentials + sent))
            assert answer is not None and answer.status == 200, answer
            assert answer.headers["x-correlation-id"] == "cid-ok" and answer.headers["x-request-id"] != "r\ufffdd"
            assert len(answer.headers["x-request-id"]) == 36  # generated


def test_no_secret_reaches_the_output_from_refused_requests(db_url, tmp_path):
    """LOG: an API key, a client secret (HTTP Basic and form body) and a bearer token, sent through every
    kind of oversized or malformed request, appear nowhere in what the process wrote, nor any 16-character
    piece of them, nor their base64."""
    partner = seed_with_cli(db_url, tmp_path)
    with gateway(db_url, tmp_path, "--body-timeout-seconds", BODY_TIMEOUT) as running:
        token = _token(running, partner)
        requests = _secret_requests(partner["apiKey"], partner["clientSecret"], token)
        for request in requests:
            exchange(running.port, request, timeout=15)
        for request in requests:  # the same, cut short by a client that goes away
            exchange(running.port, request[: len(request) * 2 // 3], close_after_send=True)
        _wait_for_lines(running, 2 * len(requests))
    output = running.output()
    assert sum(1 for line in output.splitlines() if '"event":"request"' in line) >= len(requests)
    leaked = sorted(piece for piece in _secret_pieces([partner["apiKey"], partner["clientSecret"], token])
                    if piece in output)
    assert not leaked, leaked[:5]


def _token(running: Gateway, partner: dict[str, str]) -> str:
    form = f"grant_type=client_credentials&client_id={partner['apiKey']}&client_secret={partner['clientSecret']}"
    answer = exchange(running.port, post(form.encode()))
    assert answer is not None and answer.status == 200, answer
    return str(orjson.loads(answer.body)["access_token"])


def _ids(case: str) -> bytes:
    return b"X-Request-Id: rid-%b\r\nX-Correlation-Id: cid-%b\r\n" % (case.encode(), case.encode())


REFUSED_HEADS = {
    "no-host": (lambda ids: b"GET /healthz HTTP/1.1\r\n" + ids + b"\r\n", 400, "1117"),  # HTTP/1.1 needs Host
    "control": (lambda ids: get(headers=ids + b"X-Bad: a\x01b\r\n"), 400, "1117"),  # in another field
    "fields": (lambda ids: get(headers=ids + b"".join(b"X-%d: v\r\n" % n for n in range(100))), 431, "431"),
    "padded": (lambda ids: get(headers=ids + b"X-Pad: v" + b" " * 9000 + b"\r\n"), 431, "431"),
    "line": (lambda ids: get(headers=ids + b"X-" + b"n" * 8200 + b": v\r\n"), 431, "431"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_HEADS))
def test_a_refused_head_echoes_the_ids_it_sent(served, case):
    """Every answer carries the client's X-Request-Id and echoes its X-Correlation-Id: the HTTP layer's
    refusals answered with a new id and without the correlation id, though the head had them (found by a
    probe)."""
    build, status, code = REFUSED_HEADS[case]
    answer = refused(served, build(_ids(case)), status, code)
    assert answer.headers["x-request-id"] == f"rid-{case}" and answer.headers["x-correlation-id"] == f"cid-{case}"
    line = next(line for line in served.log_lines() if line.get("request_id") == f"rid-{case}")
    assert line["correlation_id"] == f"cid-{case}" and line["method"] is None


def _answers(port: int, *reads: bytes, pause: float = 0.2) -> bytes:
    """What the server sent back to `reads`, sent `pause` apart, until it closed or went quiet for a second."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for n, data in enumerate(reads):
            if n:
                time.sleep(pause)
            sock.sendall(data)
        received = b""
        while select.select([sock], [], [], 1.0)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_fields_of_8_kib_whose_last_byte_comes_in_a_read_of_its_own_are_accepted(served):
    """The `\\r` of the empty line that ends a head, arrived without its `\\n`, was counted as a field's byte:
    fields of exactly 8 KiB were 431 when the last byte came apart (found by a review)."""
    head = get(headers=b"X-Pad: " + b"a" * (8192 - len(b"Host: gw\r\nX-Pad: \r\n")) + b"\r\n")
    assert _answers(served.port, head[:-1], head[-1:]).startswith(b"HTTP/1.1 200 ")


def test_a_request_pipelined_ahead_of_an_oversized_one_is_answered_first(served):
    """The 431 of the second request was the only answer: the first, complete and valid, got none, and a
    client would have read the 431 as its answer (found by a review)."""
    oversized = get(headers=b"X-Request-Id: second\r\n" + b"X-Pad: v" + b" " * 9000 + b"\r\n")
    answers = _answers(served.port, get(headers=b"X-Request-Id: first\r\n") + oversized)
    first, _, second = answers.partition(b"HTTP/1.0 431 ")
    assert first.startswith(b"HTTP/1.1 200 ") and b"X-Request-Id: first" in first
    assert b"X-Request-Id: second" in second


@pytest.mark.parametrize("request_bytes", [
    # The parser refuses what it read for the head behind the body, without saying which.
    post(b"hello", b"X-Request-Id: rid-first\r\nX-Correlation-Id: cid-first\r\n", b"/healthz")
    + b"GET /healthz HTTP/1.1 junk\r\nHost: gw\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nX-Request-Id : spaced\r\n\r\n",  # no field name has a blank before its colon
    b"GET /healthz HTTP/1.1\r\nX-Request-Id: part1\r\n part2\r\n\r\n",  # a value continued (obs-fold)
    get(headers=b"X-Request-Id: " + b"R" * 9000 + b"\r\n"),  # longer than the parser takes a field: 431
])
def test_a_refused_head_echoes_no_id_the_parser_would_not_read_as_its_own(served, request_bytes):
    answer = exchange(served.port, request_bytes)
    assert answer is not None and answer.status in (400, 405, 431)
    if answer.status != 405:
        assert len(answer.headers["x-request-id"]) == 36 and "x-correlation-id" not in answer.headers


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nX-Request-Id: r\x01d\r\nX-Correlation-Id: c\x01d\r\n\r\n",  # control characters
    b"GET /healthz HTTP/1.1\r\nX-Correlation-Id: one\r\nX-Correlation-Id: two\r\n\r\n",  # names no one request
    # Pipelined, the parser refuses both requests for the second, without saying which: whose ids?
    get(headers=_ids("first")) + get(headers=_ids("second") + b"X-Bad: a\x01b\r\n"),
])
def test_a_refused_head_echoes_no_id_a_parsed_request_would_not(served, request_bytes):
    answer = refused(served, request_bytes, 400, "1117")
    assert len(answer.headers["x-request-id"]) == 36 and "x-correlation-id" not in answer.headers


def test_the_setting_has_a_flag_and_a_variable():
    from gateway.cli import build_parser
    from gateway.settings import Settings

    assert Settings().body_timeout_seconds == 30
    assert Settings.from_env({"GATEWAY_BODY_TIMEOUT_SECONDS": "5"}).body_timeout_seconds == 5
    args = build_parser().parse_args(["serve", "--body-timeout-seconds", "7"])
    assert args.body_timeout_seconds == "7"


def test_an_expectation_the_server_does_not_know_is_ignored(served):
    """aiohttp answered it 417 before any middleware: plain text quoting the value, no X-Request-Id, no log
    line. RFC 9110 lets a server ignore an expectation it does not know: the request is served as it is."""
    health = exchange(served.port, get(headers=b"Expect: EXPECTMARK\r\n"))
    assert health is not None and health.status == 200 and "x-request-id" in health.headers
    unknown_key = refused(served, get(b"/v3/customers/C1/orders", b"Expect: EXPECTMARK\r\nX-Api-Key: nope\r\n"),
                          403, "4115")
    assert b"EXPECTMARK" not in unknown_key.body and "EXPECTMARK" not in served.output()
    # With a header value that is not UTF-8 too: rebuilt by cloning the request, it was a 500.
    odd = exchange(served.port, get(headers=b"Expect: EXPECTMARK\r\nX-Odd: \xff\r\n"))
    assert odd is not None and odd.status == 200


@pytest.mark.parametrize("expect", [b"Expect: 100-continue\r\n", b"Expect: other\r\nExpect: 100-Continue\r\n",
                                    b"Expect: 100-continue, other\r\n"])
def test_100_continue_is_still_met(served, expect):
    body = b"grant_type=client_credentials&client_id=nobody&client_secret=x"
    head = post(body, expect)[: -len(body)]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401 ")



def test_no_100_continue_invites_a_body_that_would_be_refused(tmp_path):
    """aiohttp sends `100 Continue` before any middleware: to a request beyond those the process serves at
    once, whose 503 then refused the body it had invited."""
    body = b"grant_type=client_credentials&client_id=nobody&client_secret=x"
    with gateway(f"sqlite:///{tmp_path}/gateway.db", tmp_path, "--max-requests-in-flight", "1") as limited:
        with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as held:
            held.sendall(post(body)[: -len(body)])  # in the app, waiting for its body: the one request served
            for _ in range(50):
                with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as sock:
                    sock.sendall(post(body, b"Expect: 100-continue\r\n")[: -len(body)])
                    first = sock.recv(65536)
                if not first.startswith(b"HTTP/1.1 100 "):
                    break
                time.sleep(0.1)  # the held request had not reached the app yet
            assert first.startswith(b"HTTP/1.1 503 ") and b'"code":"503"' in first, first
