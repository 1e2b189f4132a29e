"""The webhook receiver of a many-store run: each event is verified with the secret of
the store it names, and wakes that store's export only."""

from __future__ import annotations

import http.client
import json

import pytest

from tap_commerce_exports.webhook import WebhookReceiver, signature

SECRETS = {"alpha": "alpha-secret", "beta": "beta-secret"}


class Engine:
    def __init__(self) -> None:
        self.woken: list[tuple[str, str | None]] = []

    def wake(self, export_id: str, account: str | None = None) -> bool:
        self.woken.append((export_id, account))
        return export_id == "42"


@pytest.fixture
def receiver():
    engine = Engine()
    rx = WebhookReceiver("127.0.0.1", 0, "", lambda _id: False, stores=SECRETS, on_account_export=engine.wake)
    rx.start()
    yield rx, engine
    rx.stop()


def event(store: str | None, export_id: int = 42) -> dict:
    hook = {"events": ["export.created"], "id": 3, "target": "http://x/"}
    if store is not None:
        hook["store"] = store
    return {
        "api_version": "2024-04-01",
        "data": {"id": export_id, "status": "available"},
        "event_id": f"ev-{store}-{export_id}",
        "event_type": "export.created",
        "object": "export",
        "webhook": hook,
    }


def post(rx: WebhookReceiver, payload: dict, secret: str) -> int:
    host, port = rx.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        body = json.dumps(payload).encode()
        conn.request("POST", "/", body=body, headers={"X-29Next-Signature": signature(secret, payload)})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("form", ["beta", "beta.29next.store", "BETA.29next.store"])
def test_an_event_naming_a_store_in_either_form_wakes_that_store_s_export(receiver, form):
    rx, engine = receiver
    assert post(rx, event(form), SECRETS["beta"]) == 200
    assert engine.woken == [("42", "beta")]


def test_an_event_signed_with_another_store_s_secret_is_refused_and_wakes_nothing(receiver):
    rx, engine = receiver
    assert post(rx, event("beta"), SECRETS["alpha"]) == 200  # alpha's secret: an event of alpha's...
    assert engine.woken == []  # ...that names beta: not alpha's export, so ignored
    assert post(rx, event("beta"), "nobody's secret") == 401
    assert engine.woken == []


def test_an_event_for_a_store_not_in_the_run_is_ignored(receiver):
    rx, engine = receiver
    assert post(rx, event("gamma"), SECRETS["alpha"]) == 200
    assert post(rx, event("gamma"), "gamma-secret") == 401
    assert engine.woken == []


def test_an_event_naming_no_store_wakes_whichever_account_has_that_export(receiver):
    rx, engine = receiver
    assert post(rx, event(None), SECRETS["alpha"]) == 200
    assert engine.woken == [("42", None)]
