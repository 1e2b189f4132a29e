"""The webhook receiver of a many-store run: each event is verified with the secret of
the store it names, and wakes that store's export only."""

from __future__ import annotations

import http.client
import json
import logging

import pytest

from tap_commerce_exports.webhook import WebhookReceiver, signature
from tests.test_hostile_peers import _Lines

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


def test_an_event_naming_no_store_wakes_only_the_export_of_the_store_whose_secret_signed_it(receiver):
    rx, engine = receiver
    assert post(rx, event(None), SECRETS["alpha"]) == 200
    assert engine.woken == [("42", "alpha")]


def test_stores_sharing_a_secret_are_each_woken_by_an_event_naming_no_store():
    engine = Engine()
    shared = {"alpha": "one-secret", "beta": "one-secret", "gamma": "own-secret"}
    rx = WebhookReceiver("127.0.0.1", 0, "", lambda _id: False, stores=shared, on_account_export=engine.wake)
    rx.start()
    try:
        assert post(rx, event(None), "one-secret") == 200
    finally:
        rx.stop()
    assert sorted(engine.woken) == [("42", "alpha"), ("42", "beta")]


def test_the_replay_guard_is_kept_per_store_so_one_store_s_event_id_never_mutes_another_s(receiver):
    rx, engine = receiver
    alpha, beta = event("alpha"), event("beta")
    beta["event_id"] = alpha["event_id"]  # the same id, from two stores
    assert post(rx, alpha, SECRETS["alpha"]) == 200
    assert post(rx, alpha, SECRETS["alpha"]) == 200  # a replay: ignored
    assert post(rx, beta, SECRETS["beta"]) == 200
    assert engine.woken == [("42", "alpha"), ("42", "beta")]


def test_a_store_without_a_secret_accepts_nothing_since_anyone_can_sign_with_an_empty_key(receiver):
    engine = Engine()
    rx = WebhookReceiver(
        "127.0.0.1", 0, "", lambda _id: False, stores={"alpha": ""}, on_account_export=engine.wake
    )
    rx.start()
    try:
        assert post(rx, event("alpha"), "") == 401
    finally:
        rx.stop()
    assert engine.woken == []


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_accepted_deliveries_are_logged_one_line_per_interval_with_the_count_held_back():
    """A busy store sends a delivery per export, every day: one INFO line each would grow
    the log without bound, so they are aggregated like refusals."""
    engine, clock, lines = Engine(), _Clock(), _Lines(logging.INFO)
    logger = logging.getLogger("tap_commerce_exports.webhook")
    old_level, old_disabled = logger.level, logger.disabled
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    rx = WebhookReceiver(
        "127.0.0.1", 0, "", lambda _id: False, stores=SECRETS, on_account_export=engine.wake, clock=clock
    )
    rx.start()
    try:
        for n in range(50):
            payload = event("alpha")
            payload["event_id"] = f"ev-{n}"
            assert post(rx, payload, SECRETS["alpha"]) == 200
        clock.now += 61
        assert post(rx, event("beta"), SECRETS["beta"]) == 200
    finally:
        rx.stop()
        logger.removeHandler(lines)
        logger.setLevel(old_level)
        logger.disabled = old_disabled
    accepted = [line for line in lines.lines if "is available" in line]
    assert accepted == [
        "webhook: export 42 is available",
        "webhook: export 42 is available (49 more since the last such line)",
    ]
    assert len(engine.woken) == 51
