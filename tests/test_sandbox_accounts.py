"""Several stores and merchants in one sandbox: each its own token, data and exports.

Why: the tap syncs many accounts at once (issue 14); its end-to-end tests need an
emulator where one account's token never opens another's data, every account's rows
differ and its ids are unique across accounts (so a union can be checked exactly),
and the ground truth is asked per account. The default single account stays exactly
what it was.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

import pytest

from commerce_sandbox import SandboxConfig, SandboxServer
from commerce_sandbox.accounts import ID_SPAN, expand
from commerce_sandbox.csvgen import normalize_header

UTC = timezone.utc
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 4, tzinfo=UTC)
VERSION = {"X-29Next-API-Version": "2024-04-01"}
ACCOUNTS = [
    {"store": "store-1", "token": "token-store-1"},
    {"store": "store-2", "token": "token-store-2"},
    {"merchant_id": "MERCHANT1", "token": "token-MERCHANT1"},
    {"merchant_id": "MERCHANT2", "token": "token-MERCHANT2"},
]
BASE = dict(
    port=0, processing_delay=0.05, nc_rate_limit=0, clover_rate_limit=0, data_end="2025-01-10T00:00:00Z"
)


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None, nc: bool = True):
    """(status, parsed JSON or raw bytes) without raising on HTTP errors."""
    headers = dict(VERSION if nc else {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in ctype and raw else raw)


@pytest.fixture(scope="module")
def sb():
    with SandboxServer(SandboxConfig(accounts=ACCOUNTS, **BASE)) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(sb):
    yield
    sb.control(complete_exports=True, reset_limits=True, reset_stats=True, fault_500=0, fault_account=None)


def nc_export(sb, store: str | None, token: str, export_type: str = "order_list") -> list[dict[str, Any]]:
    """Rows of one export made through ``store``'s API (None: the default store)."""
    base = sb.store_url(store)
    status, export = call(
        base + "exports/",
        "POST",
        {"type": export_type, "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-03T23:59:59Z"},
        token,
    )
    assert status == 201, export
    sb.control(complete_exports=True)
    status, link = call(f"{base}exports/{export['id']}/download/", token=token)
    assert status == 200, link
    assert f"/media/{store or 'demo-store'}/" in link["url"]
    status, raw = call(link["url"])
    assert status == 200
    reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
    header = [normalize_header(h) for h in next(reader)]
    return [{h: (v or None) for h, v in zip(header, row, strict=False)} for row in reader]


def clover_export(sb, merchant: str, token: str, export_type: str = "ORDERS") -> list[dict[str, Any]]:
    url = f"{sb.clover_url}/v3/merchants/{merchant}/exports"
    body = {"type": export_type, "startTime": 1735689600000, "endTime": 1735948799999}
    status, export = call(url, "POST", body, token, nc=False)
    assert status == 200, export
    sb.control(complete_exports=True)
    status, done = call(f"{url}/{export['id']}", token=token, nc=False)
    assert status == 200 and done["status"] == "DONE", done
    assert done["merchantRef"] == {"id": merchant}
    objects: list[dict[str, Any]] = []
    for element in done["exportUrls"]["elements"]:
        assert f"/clover-files/{merchant}/" in element["url"]
        objects.extend(call(element["url"])[1]["elements"])
    return objects


# --- tokens ----------------------------------------------------------------------


def test_a_store_token_opens_its_own_store_and_no_other(sb):
    own = call(sb.store_url("store-1") + "exports/types/", token="token-store-1")
    assert own[0] == 200 and len(own[1]["types"]) == 13
    for store, token in (("store-2", "token-store-1"), (None, "token-store-1"), ("store-1", "sandbox-token")):
        status, body = call(sb.store_url(store) + "exports/types/", token=token)
        assert (status, body) == (401, {"detail": "Invalid token."}), (store, token)
    assert sb.stats()["by_account"]["nextcommerce"]["store-2"]["unauthorized"] == 1


def test_an_unknown_store_is_not_found(sb):
    base = sb.store_url().replace("/api/admin/", "/stores/no-such-store/api/admin/")
    assert call(base + "exports/types/", token="token-store-1") == (404, {"detail": "Not found."})


def test_a_merchant_token_opens_its_own_merchant_and_no_other(sb):
    base = sb.clover_url + "/v3/merchants/"
    status, body = call(base + "MERCHANT1", token="token-MERCHANT1", nc=False)
    assert status == 200 and body["id"] == "MERCHANT1"
    for merchant, token in (("MERCHANT2", "token-MERCHANT1"), ("SANDBOXMERCHANT1", "token-MERCHANT1")):
        assert call(base + merchant + "/exports", token=token, nc=False) == (
            401,
            {"message": "401 Unauthorized"},
        )
    assert call(base + "MERCHANT1/exports", token="wrong", nc=False)[0] == 401
    status, body = call(base + "NOSUCHMERCHANT/exports", token="token-MERCHANT1", nc=False)
    assert status == 404 and "unknown merchant id" in body["message"]


# --- data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "export_type", "names"),
    [
        ("nextcommerce", "order_list", [None, "store-1", "store-2"]),
        ("nextcommerce", "order_line_items", [None, "store-1", "store-2"]),
        ("nextcommerce", "customer_list", [None, "store-1", "store-2"]),
        ("clover", "ORDERS", [None, "MERCHANT1", "MERCHANT2"]),
        ("clover", "PAYMENTS", [None, "MERCHANT1", "MERCHANT2"]),
    ],
)
def test_every_account_has_its_own_rows_and_no_id_is_shared_across_accounts(sb, provider, export_type, names):
    keys = {name: sb.truth_keys(provider, export_type, START, END, name) for name in names}
    rows = {name: sb.truth(provider, export_type, START, END, name) for name in names}
    assert all(keys.values()), "every account has rows"
    union = [k for name in names for k in keys[name]]
    assert len(union) == len(set(union)), "ids unique across accounts"
    counts = {len(k) for k in keys.values()}
    stripped = [
        [{k: v for k, v in r.items() if k not in ("id", "number")} for r in rows[n][:5]] for n in names
    ]
    assert len(counts) > 1 or stripped[0] != stripped[1], "accounts' rows differ, not just their ids"


def test_line_items_point_at_their_own_stores_orders(sb):
    for store in (None, "store-1"):
        orders = set(sb.truth_keys("nextcommerce", "order_list", START, END, store))
        lines = sb.truth("nextcommerce", "order_line_items", START, END, store)
        assert lines and {r["order_number"] for r in lines} <= orders


def test_an_accounts_data_depends_on_seed_and_name_not_on_its_place_in_the_list():
    one = SandboxServer(
        SandboxConfig(accounts=[{"store": "b", "token": "tb"}, {"store": "a", "token": "ta"}], **BASE)
    )
    two = SandboxServer(SandboxConfig(accounts=[{"store": "a", "token": "ta"}], **BASE))
    other_seed = SandboxServer(SandboxConfig(accounts=[{"store": "a", "token": "ta"}], **{**BASE, "seed": 7}))
    rows = [s.truth("nextcommerce", "order_list", START, END, "a") for s in (one, two, other_seed)]
    assert rows[0] == rows[1] != rows[2]
    for server in (one, two, other_seed):
        server.state.close()


def test_ids_stay_exact_in_any_json_reader():
    ids = SandboxServer(SandboxConfig(accounts={"stores": 3}, **BASE)).truth_keys(
        "nextcommerce", "order_line_items", START, END, "store-3"
    )
    assert max(ids) < 2**53 and min(ids) >= ID_SPAN


def test_the_default_account_is_unchanged_by_other_accounts():
    plain = SandboxServer(SandboxConfig(**BASE))
    many = SandboxServer(SandboxConfig(accounts={"stores": 2, "merchants": 2}, **BASE))
    for provider, export_type in (
        ("nextcommerce", "order_list"),
        ("nextcommerce", "subscription_line_items"),
    ):
        assert plain.truth(provider, export_type, START, END) == many.truth(provider, export_type, START, END)
    assert plain.truth("clover", "PAYMENTS", START, END) == many.truth("clover", "PAYMENTS", START, END)
    assert many.store_url() == many.api_url and plain.accounts() == many.accounts()[:1] + many.accounts()[3:4]
    for server in (plain, many):
        server.state.close()


# --- exports, files and truth per account ----------------------------------------


def test_a_stores_export_holds_exactly_that_stores_truth(sb):
    for store, token in ((None, "sandbox-token"), ("store-2", "token-store-2")):
        rows = nc_export(sb, store, token)
        expected = sb.truth_keys("nextcommerce", "order_list", START, END, store)
        assert sorted(r["number"] for r in rows) == sorted(expected), store


def test_a_merchants_export_holds_exactly_that_merchants_truth(sb):
    for merchant, token in (("SANDBOXMERCHANT1", "sandbox-token"), ("MERCHANT2", "token-MERCHANT2")):
        objects = clover_export(sb, merchant, token)
        expected = sb.truth_keys(
            "clover", "ORDERS", START, END, None if merchant == "SANDBOXMERCHANT1" else merchant
        )
        assert sorted(o["id"] for o in objects) == sorted(expected), merchant


def test_the_truth_endpoint_takes_an_account(sb):
    url = (
        f"{sb.clover_url}/_sandbox/truth?provider=nextcommerce&type=order_list"
        "&from=2025-01-01T00:00:00Z&to=2025-01-04T00:00:00Z"
    )
    assert call(url + "&account=store-1")[1]["keys"] == sb.truth_keys(
        "nextcommerce", "order_list", START, END, "store-1"
    )
    assert call(url)[1]["keys"] == sb.truth_keys("nextcommerce", "order_list", START, END)
    status, body = call(url + "&account=nobody")
    assert status == 400 and "nobody" in body["detail"]


def test_a_stores_exports_are_invisible_to_another_store(sb):
    one, two = sb.store_url("store-1"), sb.store_url("store-2")
    body = {"type": "customer_list", "date_from": "2025-01-01T00:00:00Z", "date_to": "2025-01-02T00:00:00Z"}
    status, export = call(one + "exports/", "POST", body, "token-store-1")
    assert status == 201 and export["url"] == f"{one}exports/{export['id']}/"
    assert call(f"{two}exports/{export['id']}/", token="token-store-2")[0] == 404
    listed = call(two + "exports/", token="token-store-2")[1]["results"]
    assert export["id"] not in [e["id"] for e in listed]
    assert export["id"] in [e["id"] for e in call(one + "exports/", token="token-store-1")[1]["results"]]
    by_account = sb.stats()["by_account"]["nextcommerce"]
    assert by_account["store-1"]["exports_created"] == 1
    assert by_account.get("store-2", {}).get("exports_created", 0) == 0


def test_the_clover_running_export_cap_is_per_merchant(sb):
    sb.control(clover_max_running=1, processing_delay=30)
    try:
        body = {"type": "ORDERS", "startTime": 1735689600000, "endTime": 1735775999999}
        urls = {m: f"{sb.clover_url}/v3/merchants/{m}/exports" for m in ("MERCHANT1", "MERCHANT2")}
        assert call(urls["MERCHANT1"], "POST", body, "token-MERCHANT1", nc=False)[0] == 200
        status, second = call(urls["MERCHANT2"], "POST", body, "token-MERCHANT2", nc=False)
        assert status == 200, "another merchant's running export does not count"
        assert call(urls["MERCHANT1"], "POST", body, "token-MERCHANT1", nc=False)[0] == 503
        listed = call(urls["MERCHANT2"], token="token-MERCHANT2", nc=False)[1]["elements"]
        assert second["id"] in [e["id"] for e in listed]
        assert {e["merchantRef"]["id"] for e in listed} == {"MERCHANT2"}
        stats = sb.stats()
        assert stats["max_clover_exports_running_all"] == 2 and stats["max_clover_exports_running"] == 1
        assert stats["by_account"]["clover"]["MERCHANT1"]["exports_created"] == 1
    finally:
        sb.control(clover_max_running=2, processing_delay=0.05, complete_exports=True)


def create_for(sb, merchant: str) -> tuple[int, Any]:
    """One Clover orders export of ``merchant``, created with its own token."""
    body = {"type": "ORDERS", "startTime": 1735689600000, "endTime": 1735775999999}
    url = f"{sb.clover_url}/v3/merchants/{merchant}/exports"
    return call(url, "POST", body, f"token-{merchant}", nc=False)


def test_an_app_wide_running_export_cap_refuses_any_merchant_once_the_app_is_full(sb):
    sb.control(clover_max_running=100, clover_app_max_running=1, processing_delay=30)
    try:
        assert create_for(sb, "MERCHANT1")[0] == 200
        status, refusal = create_for(sb, "MERCHANT2")
        assert status == 503, "the other merchant's running export fills the app's one place"
        assert "Too many exports" in refusal["message"]
        assert sb.stats()["503s_app_running"] == 1
    finally:
        sb.control(
            clover_max_running=2, clover_app_max_running=0, processing_delay=0.05, complete_exports=True
        )


def test_the_app_wide_clover_concurrency_limit_spans_merchants(sb):
    sb.control(clover_app_max_concurrent_requests=1, clover_request_delay=2.0)
    first: dict[str, Any] = {}
    url = sb.clover_url + "/v3/merchants/{}"
    thread = threading.Thread(
        target=lambda: first.update(r=call(url.format("MERCHANT1"), token="token-MERCHANT1", nc=False))
    )
    try:
        thread.start()
        deadline = time.monotonic() + 10
        while sb.stats()["max_concurrent_clover_requests_app"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # waits for a state, not for a race: the first request is inside
        status, body = call(url.format("MERCHANT2"), token="token-MERCHANT2", nc=False)
        assert status == 429 and "app" in body["message"]
    finally:
        thread.join()
        sb.control(clover_app_max_concurrent_requests=10, clover_request_delay=0.0, reset_limits=True)
    assert first["r"][0] == 200


def test_a_fault_can_be_aimed_at_one_account(sb):
    sb.control(fault_500=1, fault_account="store-2")
    assert call(sb.store_url("store-1") + "exports/types/", token="token-store-1")[0] == 200
    assert call(sb.store_url() + "exports/types/", token="sandbox-token")[0] == 200
    assert call(sb.store_url("store-2") + "exports/types/", token="token-store-2")[0] == 500
    assert call(sb.store_url("store-2") + "exports/types/", token="token-store-2")[0] == 200


def test_a_webhook_names_the_store_of_its_export_and_uses_that_stores_secret():
    received: list[tuple[dict[str, Any], str | None]] = []
    done = threading.Event()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers.get("X-29Next-Signature")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    accounts = [{"store": "store-9", "token": "t9", "webhook_url": target, "webhook_secret": "s9"}]
    try:
        with SandboxServer(SandboxConfig(accounts=accounts, **BASE)) as sb:
            body = {
                "type": "order_list",
                "date_from": "2025-01-01T00:00:00Z",
                "date_to": "2025-01-02T00:00:00Z",
            }
            assert call(sb.store_url("store-9") + "exports/", "POST", body, "t9")[0] == 201
            assert (
                call(sb.store_url() + "exports/", "POST", body, "sandbox-token")[0] == 201
            )  # no webhook_url
            assert done.wait(10)
    finally:
        receiver.shutdown()
        receiver.server_close()
    from commerce_sandbox.webhook import signature

    (envelope, sig) = received[0]
    assert len(received) == 1 and envelope["webhook"]["store"] == "store-9"
    assert sig == signature("s9", json.dumps(envelope).encode())


# --- the setting -----------------------------------------------------------------


def test_the_count_form_names_accounts_a_test_can_compute():
    assert expand("stores=2,merchants=1") == [
        {"store": "store-1", "token": "token-store-1"},
        {"store": "store-2", "token": "token-store-2"},
        {"merchant_id": "MERCHANT1", "token": "token-MERCHANT1"},
    ]
    assert expand({"stores": 1}) == expand('{"stores": 1}') == expand("stores=1")


@pytest.mark.parametrize(
    ("accounts", "message"),
    [
        ([{"store": "s", "merchant_id": "m", "token": "t"}], "exactly one of store"),
        ([{"store": "s"}], "token is missing"),
        ([{"store": "s", "token": "sandbox-token"}], "reuses the token"),
        ([{"store": "s", "token": "t"}, {"store": "s", "token": "u"}], "listed twice"),
        ([{"store": "a/b", "token": "t"}], "URL paths"),
        ([{"store": "s", "token": "t", "secret": "x"}], "unknown key"),
        ("shops=3", "unknown count key"),
    ],
)
def test_a_bad_accounts_setting_is_refused_naming_what_to_fix(accounts, message):
    with pytest.raises(ValueError, match=message):
        SandboxConfig(accounts=accounts)


def test_accounts_can_be_added_at_runtime_and_are_listed(sb):
    status, body = call(sb.clover_url + "/_sandbox/control", "POST", {"accounts": "stores=3"})
    try:
        assert status == 200 and len(body["accounts"]) == 3
        listed = call(sb.clover_url + "/_sandbox/accounts")[1]["accounts"]
        stores = [a for a in listed if a["provider"] == "nextcommerce"]
        assert [a["store"] for a in stores] == ["demo-store", "store-1", "store-2", "store-3"]
        assert stores[3]["api_url"] == sb.store_url("store-3") and stores[3]["token"] == "token-store-3"
        assert call(stores[3]["api_url"] + "exports/types/", token="token-store-3")[0] == 200
        status, body = call(sb.clover_url + "/_sandbox/control", "POST", {"accounts": [{"store": "x"}]})
        assert status == 400 and "accounts[0]" in body["detail"]
    finally:
        sb.control(accounts=ACCOUNTS)


def test_the_command_line_takes_accounts_and_prints_them():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "commerce_sandbox",
            "--port",
            "0",
            "--accounts",
            "stores=2,merchants=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "account=store-1 account=store-2 account=MERCHANT1" in line
        api_url = line.split("api_url=")[1].split()[0]
        store_url = api_url.replace("/api/admin/", "/stores/store-2/api/admin/")
        assert call(store_url + "exports/types/", token="token-store-2")[0] == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
