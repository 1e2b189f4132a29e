"""The export.created webhook receiver: signature, size bound, unknown exports, other events."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import uuid

import pytest

from tap_commerce_exports.webhook import MAX_BODY, WebhookReceiver, signature

SECRET = "whsec-test-secret"


def envelope(export_id=1042, event_type="export.created", event_id=None):
    """A delivery as Next Commerce sends it; each gets its own event_id (replays are dropped)."""
    return {
        "api_version": "2024-04-01",
        "data": {
            "id": export_id,
            "status": "available",
            "type": "order_list",
            "url": "https://media.example/exports/1042.csv",
        },
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "object": "export",
        "webhook": {
            "events": ["export.created"],
            "id": 7,
            "store": "demo-store",
            "target": "https://example.com/hook",
        },
    }


def sign(payload, secret=SECRET) -> str:
    return hmac.new(secret.encode(), json.dumps(payload).encode(), hashlib.sha256).hexdigest()


class Recorder:
    def __init__(self, known=("1042",)) -> None:
        self.known = set(known)
        self.calls: list[str] = []
        self.woken: list[str] = []

    def __call__(self, export_id: str) -> bool:
        self.calls.append(export_id)
        if export_id in self.known:
            self.woken.append(export_id)
            return True
        return False


@pytest.fixture(scope="module")
def _shared_receivers():
    """One real receiver per callback kind for the module (stopping one takes ~0.5 s)."""
    current = {"on_export": None}
    rcv = WebhookReceiver("127.0.0.1", 0, SECRET, lambda eid: current["on_export"](eid))
    rcv.start()
    yield rcv, current
    rcv.stop()


@pytest.fixture
def receiver(_shared_receivers):
    """``receiver(on_export)``: a running WebhookReceiver that calls ``on_export``."""
    rcv, current = _shared_receivers

    def start(on_export):
        current["on_export"] = on_export
        return rcv

    yield start
    current["on_export"] = None


def post(rcv, body: bytes, headers=None, *, content_length=True):
    host, port = rcv.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.putrequest("POST", "/webhooks/export")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if content_length:
        all_headers["Content-Length"] = str(len(body))
    for key, value in all_headers.items():
        conn.putheader(key, value)
    conn.endheaders()
    if body:
        conn.send(body)
    response = conn.getresponse()
    result = response.status, json.loads(response.read() or b"{}")
    conn.close()
    return result


def test_signature_is_hex_hmac_sha256_of_the_default_json_dumps_of_the_payload():
    payload = envelope()
    assert signature(SECRET, payload) == sign(payload)


def test_a_validly_signed_export_created_wakes_the_export_and_answers_200(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    status, body = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    assert status == 200
    assert on_export.woken == ["1042"]


def test_the_signature_is_checked_over_the_reserialized_body_so_compact_json_is_accepted(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    compact = json.dumps(payload, separators=(",", ":")).encode()
    status, _ = post(rcv, compact, {"X-29Next-Signature": sign(payload).upper()})
    assert status == 200 and on_export.woken == ["1042"]


@pytest.mark.parametrize("given", ["", "deadbeef", "00" * 32, "sig-of-other-secret"])
def test_a_bad_signature_is_refused_with_401_without_calling_on_export(receiver, given):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    if given == "sig-of-other-secret":
        given = sign(payload, "other-secret")
    headers = {"X-29Next-Signature": given} if given else {}
    status, _ = post(rcv, json.dumps(payload).encode(), headers)
    assert status == 401
    assert on_export.calls == []


def test_a_tampered_body_is_refused_with_401(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    tampered = envelope(export_id=9999)
    status, _ = post(rcv, json.dumps(tampered).encode(), {"X-29Next-Signature": sign(payload)})
    assert status == 401 and on_export.calls == []


def test_a_body_over_64_kib_is_refused_with_413_before_reading_it(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    payload["padding"] = "x" * MAX_BODY
    status, _ = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    assert status == 413 and on_export.calls == []
    assert MAX_BODY == 64 * 1024


def test_a_delivery_without_content_length_is_refused_with_411(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    status, _ = post(rcv, b"", content_length=False)
    assert status == 411 and on_export.calls == []


def test_an_unknown_export_id_is_answered_200_and_ignored_so_the_store_never_disables_the_webhook(
    receiver,
):
    """A dashboard-made export fires the same store-wide subscription: a 404 would be
    retried for days, e-mail every store admin and end with the webhook deactivated."""
    on_export = Recorder(known=())
    rcv = receiver(on_export)
    payload = envelope(export_id=777)
    status, body = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    assert (status, body["detail"]) == (200, "ignored: unknown export")
    assert on_export.woken == []


def test_an_unknown_export_id_changes_nothing_in_a_real_engine(receiver, tmp_path):
    from tests.engine_fakes import ScriptedProvider, make  # the engine's own fake provider

    orch = make(ScriptedProvider(), tmp_path)
    rcv = receiver(orch.wake)
    payload = envelope(export_id=777)
    status, _ = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    orch.stop()
    assert status == 200
    assert not any(job.wake_requested for job in orch._jobs)


@pytest.mark.parametrize("body", [b"event=export.created", b"[1, 2"])
def test_a_body_that_is_not_json_is_refused_with_400(receiver, body):
    on_export = Recorder()
    rcv = receiver(on_export)
    status, _ = post(rcv, body, {"X-29Next-Signature": "00"})
    assert status == 400 and on_export.calls == []


def test_a_signed_export_created_without_an_export_id_is_ignored_with_200(receiver):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    del payload["data"]["id"]
    status, _ = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    assert status == 200 and on_export.calls == []


@pytest.mark.parametrize(
    "dumps",
    [
        pytest.param(lambda p: json.dumps(p, separators=(",", ":")), id="compact"),
        pytest.param(lambda p: json.dumps(p, indent=2, sort_keys=True), id="indented"),
        pytest.param(lambda p: json.dumps(p, ensure_ascii=False) + "\n", id="utf-8 with a newline"),
    ],
)
def test_a_signature_over_the_raw_body_bytes_is_accepted_too(receiver, dumps):
    """The guide's example signs the re-serialized body; live deliveries have verified
    over the raw bytes. Both are keyed by the secret, so both prove the sender."""
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope()
    payload["data"]["note"] = "Café ✓"
    raw = dumps(payload).encode()
    assert hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest() != sign(payload)
    given = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    status, body = post(rcv, raw, {"X-29Next-Signature": given})
    assert (status, body["detail"]) == (200, "ok") and on_export.woken == ["1042"]
    forged = hmac.new(b"other-secret", raw, hashlib.sha256).hexdigest()
    assert post(rcv, raw, {"X-29Next-Signature": forged})[0] == 401


@pytest.mark.parametrize("event_type", ["order.created", "export.deleted", None])
def test_other_signed_event_types_are_ignored_with_200(receiver, event_type):
    on_export = Recorder()
    rcv = receiver(on_export)
    payload = envelope(event_type=event_type)
    status, body = post(rcv, json.dumps(payload).encode(), {"X-29Next-Signature": sign(payload)})
    assert status == 200 and body["detail"] == "ignored"
    assert on_export.calls == []


def test_get_is_not_allowed(receiver):
    rcv = receiver(Recorder())
    host, port = rcv.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 405
    conn.close()
