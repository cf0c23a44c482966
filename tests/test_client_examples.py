"""The client's examples (client/examples/) run as a partner would run them, against a real gateway."""
from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from client_support import Gateway, Proxy, READS, WRITES, gateway  # gateway: a fixture used by name
from conftest import ROOT, free_port

EXAMPLES = ROOT / "client" / "examples"
SECRET = "whsec_" + base64.b64encode(b"receiver test secret 24b").decode()


def run_example(gateway: Gateway, name: str, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_URL": base_url or gateway.url, "GATEWAY_API_KEY": gateway.api_key,
           "GATEWAY_CLIENT_SECRET": gateway.client_secret}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_export_history_csv_writes_one_row_per_order_line(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "history.csv"
    result = run_example(gateway, "export_history_csv.py", READS, "--status", "1000", "--status", "1008",
                         "--output", str(out))
    assert result.returncode == 0, result.stderr
    with gateway.client() as client:
        orders = list(client.history(READS, status=["1000", "1008"]))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    expected = [(order["orderId"], line["offerId"]) for order in orders for line in order["lineItems"]]
    assert [(row["orderId"], row["offerId"]) for row in rows] == expected
    assert {row["status"] for row in rows} == {"1000", "1008"}
    assert result.stderr.strip() == f"{len(expected)} order lines exported"


def test_export_history_csv_reports_a_refusal(gateway: Gateway) -> None:
    result = run_example(gateway, "export_history_csv.py", "NO-SUCH-CUSTOMER")
    assert result.returncode == 1 and "1116" in result.stderr


def test_place_order_safely_places_once_across_lost_answers_and_reruns(gateway: Gateway) -> None:
    scripted = Proxy(gateway.url)
    scripted.drop_after_forwarding("POST")
    with scripted.serving() as url:
        first = run_example(gateway, "place_order_safely.py", WRITES, "PO-EXAMPLE-1", "OFFER-A", "--quantity", "3",
                            base_url=url)
    assert first.returncode == 0, first.stderr
    again = run_example(gateway, "place_order_safely.py", WRITES, "PO-EXAMPLE-1", "OFFER-A", "--quantity", "3")
    placed, found = json.loads(first.stdout), json.loads(again.stdout)
    assert placed["placed"] and not found["placed"]
    assert found["order"]["orderId"] == placed["order"]["orderId"]
    assert len(scripted.requests("POST")) == 2  # the lost answer, then its replay
    with gateway.client() as client:
        assert len(list(client.history(WRITES, external_reference_id="PO-EXAMPLE-1"))) == 1


def test_place_order_safely_places_a_corrected_order_after_a_refused_one(gateway: Gateway) -> None:
    """The refusal of a quantity of 0 is stored for replay: with an id of the purchase order alone, the
    corrected rerun was answered 422 4123."""
    refused = run_example(gateway, "place_order_safely.py", WRITES, "PO-EXAMPLE-2", "OFFER-A", "--quantity", "0")
    assert refused.returncode == 1 and "2120" in refused.stderr
    corrected = run_example(gateway, "place_order_safely.py", WRITES, "PO-EXAMPLE-2", "OFFER-A", "--quantity", "2")
    assert corrected.returncode == 0, corrected.stderr
    assert json.loads(corrected.stdout)["order"]["lineItems"][0]["quantity"] == 2


@contextlib.contextmanager
def receiver(tmp_path: Path) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """The receiver example on a free loopback port; after the block, the events it handled."""
    port = free_port()
    handled: list[dict[str, object]] = []
    log = tmp_path / "receiver.out"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(EXAMPLES / "webhook_receiver.py"), "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "WEBHOOK_SECRET": SECRET})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/webhooks", handled
    finally:
        process.terminate()
        process.wait(timeout=10)
    handled.extend(json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))


def delivery(event: dict[str, object], *, at: datetime | None = None, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps(event).encode()
    moment = at or datetime.now(timezone.utc)
    headers = {"webhook-id": str(event["eventId"]), "webhook-timestamp": str(int(moment.timestamp())),
               "webhook-signature": Webhook(secret).sign(str(event["eventId"]), moment, body.decode()),
               "content-type": "application/json"}
    return headers, body


def test_webhook_receiver_handles_each_event_once_and_refuses_bad_deliveries(gateway: Gateway, tmp_path: Path) -> None:
    with gateway.client() as client:
        events = list(client.events(customer_id=READS, limit=2))[:2]
    wrong_secret = "whsec_" + base64.b64encode(b"not the receiver's secret").decode()
    with receiver(tmp_path) as (url, handled), httpx.Client() as http:
        answers = [http.post(url, headers=headers, content=body) for headers, body in [
            delivery(events[0]), delivery(events[0]), delivery(events[1]),
            delivery(events[1], secret=wrong_secret),
            delivery(events[1], at=datetime.now(timezone.utc) - timedelta(minutes=10)),
        ]]
        tampered_headers, body = delivery(events[1])
        answers.append(http.post(url, headers=tampered_headers, content=body.replace(b"order", b"Order")))
    assert [answer.status_code for answer in answers] == [200, 200, 200, 400, 400, 400]
    assert [answer.json().get("status") for answer in answers[:3]] == ["handled", "duplicate", "handled"]
    assert [event["eventId"] for event in handled] == [events[0]["eventId"], events[1]["eventId"]]
    assert handled[0]["orderId"] == events[0]["orderId"]
