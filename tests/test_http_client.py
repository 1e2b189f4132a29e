"""The HTTP layer: redaction, the shared rate limiter, and the API client against real local servers."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import Reply

from tap_commerce_exports.errors import AuthError
from tap_commerce_exports.http import redact
from tap_commerce_exports.http.api_client import ApiClient, ApiError, retry_after_seconds
from tap_commerce_exports.http.ratelimit import WINDOW_MARGIN, LimiterChain, RateLimiter
from tap_commerce_exports.http.redact import SecretsFilter, redact_url, register_secret, scrub
from tap_commerce_exports.providers.nextcommerce import NextCommerceProvider
from tap_commerce_exports.settings import load_settings

TOKEN = "tok-very-secret-4242"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(ApiClient, "backoff_base", 0.001)
    monkeypatch.setattr(ApiClient, "backoff_max_value", 0.01)
    monkeypatch.setattr(ApiClient, "max_tries", 3)


@pytest.fixture
def registered_token(monkeypatch):
    monkeypatch.setattr(redact, "_secrets", set())
    register_secret(TOKEN)
    return TOKEN


def client_for(base: str, *, rate: float = 1000.0) -> ApiClient:
    return ApiClient(
        base + "/api/admin/",
        {"Authorization": f"Bearer {TOKEN}"},
        RateLimiter(rate),
        auth_hint="check 'access_token'",
    )


def provider_for(base: str) -> NextCommerceProvider:
    settings = load_settings(
        {
            "access_token": TOKEN,
            "api_url": base + "/api/admin/",
            "start_date": "2025-01-01",
            "max_requests_per_second": 1000,
        }
    )
    return NextCommerceProvider(settings)


def json_reply(text: str, status: int = 200, **headers: str) -> Reply:
    return Reply(status, text.encode(), {"Content-Type": "application/json", **headers})


# ================================================================== redaction
def test_redact_url_drops_query_fragment_and_user_info_but_keeps_host_port_and_path():
    url = "https://user:pw@files.example.com:8443/exports/1.csv?X-Amz-Signature=abc#frag"
    assert redact_url(url) == "https://files.example.com:8443/exports/1.csv"


def test_scrub_masks_registered_secrets_and_query_strings_in_free_text(registered_token):
    text = f"failed: Bearer {TOKEN} on https://h.example/f.csv?sig=SIGNATURE123 (x)"
    cleaned = scrub(text)
    assert TOKEN not in cleaned
    assert "SIGNATURE123" not in cleaned
    assert "https://h.example/f.csv" in cleaned


def test_secrets_shorter_than_four_characters_are_not_registered(monkeypatch):
    monkeypatch.setattr(redact, "_secrets", set())
    register_secret("abc")
    register_secret(None)
    assert scrub("abc") == "abc"


def _filtered(message: str, *args: object) -> str:
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1, message, args, None)
    assert SecretsFilter().filter(record) is True
    return record.getMessage()


def test_the_log_filter_scrubs_the_token_and_query_strings_from_record_arguments(registered_token):
    out = _filtered("GET %s with %s", "https://h.example/x?sig=SIGNATURE123", TOKEN)
    assert "SIGNATURE123" not in out and TOKEN not in out
    assert "https://h.example/x" in out


def test_the_log_filter_scrubs_urllib3_request_lines_whose_url_is_a_bare_path(registered_token):
    # urllib3.connectionpool logs: '%s://%s:%s "%s %s %s" %s %s' with the path+query apart
    out = _filtered(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "files.example.com",
        443,
        "GET",
        "/exports/1.csv?X-Amz-Signature=SIGNATURE123&X-Amz-Credential=KEY",
        "HTTP/1.1",
        200,
        1234,
    )
    assert "SIGNATURE123" not in out and "KEY" not in out
    assert "/exports/1.csv" in out


def test_the_log_filter_scrubs_urllib3_redirect_lines(registered_token):
    out = _filtered("Redirecting %s -> %s", "https://a.example/f?sig=ONE", "https://b.example/f?sig=TWO")
    assert "ONE" not in out and "TWO" not in out


def test_the_log_filter_leaves_clean_records_untouched():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    SecretsFilter().filter(record)
    assert record.msg == "plain %s" and record.args == ("text",)


def test_installed_log_filter_scrubs_real_urllib3_debug_output(local_http, caplog):
    redact.install_log_filter()
    server = local_http(lambda req: Reply(200, b"ok"))
    import requests

    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        requests.get(server.url + "/file.csv?sig=SIGNATURE123", timeout=5)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/file.csv" in text
    assert "SIGNATURE123" not in text


# ================================================================== retry-after
@pytest.mark.parametrize(
    "value, expected", [("2", 2.0), ("0.5", 0.5), (None, 1.0), ("", 1.0), ("soon", 1.0), ("-3", 0.0)]
)
def test_retry_after_is_read_as_seconds_with_a_default(value, expected):
    assert retry_after_seconds(value) == expected


def test_retry_after_may_be_an_http_date_in_the_past_meaning_now():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# ================================================================== rate limiter
class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_are_spaced_at_the_configured_rate_within_one_window():
    t = FakeTime()
    limiter = RateLimiter(4, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(5):
        with limiter.slot():
            starts.append(t.now)
    # four spaced sends, then the fifth one window (1 s + margin) after the first answer
    assert starts == pytest.approx([100.0, 100.25, 100.5, 100.75, 101.0 + WINDOW_MARGIN])


def test_a_request_holds_its_place_until_one_window_after_its_answer_whatever_the_latency():
    # the server may stamp a request anywhere between our send and its answer: so the
    # (limit+1)-th request goes out only a full window after the answer to the first
    t = FakeTime()
    limiter = RateLimiter(4, clock=t.clock, sleep=t.sleep)
    latencies = [0.4, 0.0, 0.3, 0.0, 0.2, 0.5, 0.0, 0.1, 0.0, 0.3, 0.7, 0.0]
    spans = []
    for latency in latencies:
        with limiter.slot():
            start = t.now
            t.now += latency
        spans.append((start, t.now))
    for i in range(4, len(spans)):
        assert spans[i][0] >= spans[i - 4][1] + 1.0
    # so no 1-second window of server time can hold 5 of them, wherever each was stamped
    for i in range(len(spans) - 4):
        assert spans[i + 4][0] - spans[i][1] >= 1.0


def test_a_rate_below_one_per_second_is_one_request_per_so_many_seconds():
    t = FakeTime()
    limiter = RateLimiter(0.5, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(3):
        with limiter.slot():
            starts.append(t.now)
    assert starts == pytest.approx([100.0, 102.0 + WINDOW_MARGIN, 104.0 + 2 * WINDOW_MARGIN])


def test_a_slow_caller_does_not_bank_a_burst_of_requests():
    t = FakeTime()
    limiter = RateLimiter(2, clock=t.clock, sleep=t.sleep)
    with limiter.slot():
        pass
    t.now += 10  # idle
    starts = []
    for _ in range(3):
        with limiter.slot():
            starts.append(t.now)
    assert starts == pytest.approx([110.0, 110.5, 111.0 + WINDOW_MARGIN])


def test_a_request_sent_while_the_limit_is_in_flight_waits_a_window_after_their_answers():
    limiter = RateLimiter(2)
    inside, release = threading.Barrier(3), threading.Event()

    def hold():
        with limiter.slot():
            inside.wait(5)
            release.wait(5)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for th in holders:
        th.start()
    inside.wait(5)  # both places of the window are held by requests in flight
    started: list[float] = []

    def late():
        with limiter.slot():
            started.append(time.monotonic())

    caller = threading.Thread(target=late)
    caller.start()
    answered = time.monotonic()
    release.set()
    for th in [*holders, caller]:
        th.join(5)
    assert started and started[0] >= answered + 1.0


def test_a_pause_after_a_429_holds_back_every_caller_until_it_ends():
    t = FakeTime()
    limiter = RateLimiter(1000, clock=t.clock, sleep=t.sleep)
    limiter.pause(5)
    starts = []
    for _ in range(3):  # three different callers after the 429
        with limiter.slot():
            starts.append(t.now)
    assert all(s >= 105.0 for s in starts)


def test_a_shorter_pause_never_shortens_a_longer_one():
    t = FakeTime()
    limiter = RateLimiter(1000, clock=t.clock, sleep=t.sleep)
    limiter.pause(5)
    limiter.pause(1)
    with limiter.slot():
        assert t.now >= 105.0


def test_a_pause_that_starts_while_a_caller_sleeps_is_honoured_too():
    t = FakeTime()
    limiter = RateLimiter(1, clock=t.clock, sleep=t.sleep)
    with limiter.slot():
        pass
    paused = []

    def sleep_and_get_throttled(seconds):
        t.sleep(seconds)
        if not paused:
            paused.append(True)
            limiter.pause(3)  # another thread got a 429 meanwhile

    limiter._sleep = sleep_and_get_throttled
    with limiter.slot():
        assert t.now >= 101.0 + 3.0


def test_a_pause_applies_to_callers_on_other_threads():
    limiter = RateLimiter(1000)
    limiter.pause(0.15)
    began = time.monotonic()
    starts: list[float] = []

    def call():
        with limiter.slot():
            starts.append(time.monotonic() - began)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5)
    assert len(starts) == 3 and min(starts) >= 0.14


def test_no_more_than_max_concurrent_requests_are_in_flight():
    limiter = RateLimiter(10_000, max_concurrent=2)
    lock = threading.Lock()
    now_in = [0]
    peak = [0]

    def call():
        with limiter.slot():
            with lock:
                now_in[0] += 1
                peak[0] = max(peak[0], now_in[0])
            time.sleep(0.03)
            with lock:
                now_in[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(5)
    assert peak[0] == 2


def test_an_in_flight_place_is_released_when_the_request_raises():
    limiter = RateLimiter(10_000, max_concurrent=1)
    with pytest.raises(RuntimeError):
        with limiter.slot():
            raise RuntimeError("boom")
    done = threading.Event()
    threading.Thread(target=lambda: (limiter.slot().__enter__(), done.set()), daemon=True).start()
    assert done.wait(30)  # bounds a hang only


# ================================================================== API client
def test_bearer_token_and_api_version_headers_reach_the_api_origin(local_http):
    api = local_http(lambda req: json_reply('{"types": [{"code": "order_list"}]}'))
    provider = provider_for(api.url)
    provider.check_access()
    seen = api.requests[0]
    assert seen.path == "/api/admin/exports/types/"
    assert seen.header("Authorization") == f"Bearer {TOKEN}"
    assert seen.header("X-29Next-API-Version") == "2024-04-01"
    assert seen.header("User-Agent").startswith("tap-commerce-exports/")


def test_post_sends_a_json_body(local_http):
    api = local_http(lambda req: json_reply('{"id": 7, "status": "pending"}', 201))
    client = client_for(api.url)
    client.post_json("exports/", {"type": "order_list"})
    assert api.requests[0].method == "POST"
    assert api.requests[0].body == b'{"type": "order_list"}'


def test_an_absolute_url_to_another_origin_is_refused_and_that_host_sees_nothing(local_http):
    api = local_http(lambda req: json_reply("{}"))
    other = local_http(lambda req: json_reply("{}"))
    client = client_for(api.url)
    with pytest.raises(ApiError) as info:
        client.get_json(other.url + "/api/admin/exports/?cursor=abc")
    assert other.requests == []
    assert api.requests == []
    assert "another host" in str(info.value)
    assert "cursor=abc" not in str(info.value)


def test_an_absolute_url_on_the_same_origin_is_allowed(local_http):
    api = local_http(lambda req: json_reply('{"results": []}'))
    client = client_for(api.url)
    assert client.get_json(api.url + "/api/admin/exports/?cursor=abc") == {"results": []}
    assert api.requests[0].path == "/api/admin/exports/?cursor=abc"


def test_a_redirect_is_not_followed_so_the_token_never_reaches_its_target(local_http):
    other = local_http(lambda req: json_reply("{}"))
    api = local_http(lambda req: Reply(302, b"", {"Location": other.url + "/steal"}))
    client = client_for(api.url)
    with pytest.raises(ApiError) as info:
        client.get_json("exports/1/")
    assert other.requests == []
    assert "redirect" in str(info.value)
    assert info.value.status == 302


def test_a_429_waits_for_retry_after_then_succeeds(local_http):
    answers = iter(
        [json_reply('{"detail": "slow down"}', 429, **{"Retry-After": "0.15"}), json_reply('{"ok": true}')]
    )
    api = local_http(lambda req: next(answers))
    client = client_for(api.url)
    began = time.monotonic()
    assert client.get_json("exports/1/") == {"ok": True}
    assert time.monotonic() - began >= 0.14
    assert len(api.requests) == 2


def test_a_429_with_lowercase_retry_after_is_honoured(local_http):
    answers = iter([Reply(429, b"", {"retry-after": "0.1"}), json_reply("[]")])
    api = local_http(lambda req: next(answers))
    began = time.monotonic()
    assert client_for(api.url).get_json("x") == []
    assert time.monotonic() - began >= 0.09


def test_endless_429s_end_in_one_line_asking_to_lower_the_rate(local_http, monkeypatch):
    monkeypatch.setattr(ApiClient, "max_throttle_retries", 2)
    api = local_http(lambda req: Reply(429, b"", {"Retry-After": "0"}))
    with pytest.raises(ApiError) as info:
        client_for(api.url).get_json("x")
    assert "max_requests_per_second" in str(info.value)
    assert "\n" not in str(info.value)
    assert len(api.requests) == 3


def test_a_500_is_retried_and_then_succeeds(local_http):
    answers = iter([Reply(500, b"oops"), Reply(502, b""), json_reply('{"id": 1}')])
    api = local_http(lambda req: next(answers))
    assert client_for(api.url).get_json("exports/1/") == {"id": 1}
    assert len(api.requests) == 3


def test_a_persistent_500_ends_in_one_line_api_error_after_max_tries(local_http, registered_token):
    api = local_http(lambda req: Reply(500, TOKEN.encode()))
    with pytest.raises(ApiError) as info:
        client_for(api.url).get_json("exports/1/?sig=SECRETSIG")
    message = str(info.value)
    assert len(api.requests) == ApiClient.max_tries
    assert "\n" not in message
    assert "500" in message and "3 tries" in message
    assert TOKEN not in message and "SECRETSIG" not in message


def test_an_unreachable_api_ends_in_one_line_naming_api_url(local_http):
    server = local_http(lambda req: Reply(200))
    dead = server.url
    server.close()
    with pytest.raises(ApiError) as info:
        client_for(dead).get_json("x")
    assert "'api_url'" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_an_auth_error_naming_access_token_never_the_token(local_http, status):
    api = local_http(lambda req: json_reply(f'{{"detail": "bad token {TOKEN}"}}', status))
    provider = provider_for(api.url)
    with pytest.raises(AuthError) as info:
        provider.get_export("1")
    message = str(info.value)
    assert "'access_token'" in message and str(status) in message
    assert TOKEN not in message
    assert "\n" not in message
    assert len(api.requests) == 1  # not retried


def test_a_4xx_is_an_api_error_with_its_status_and_a_short_scrubbed_body(local_http, registered_token):
    api = local_http(lambda req: json_reply('{"detail": "bad date_from"}' + "x" * 500, 400))
    with pytest.raises(ApiError) as info:
        client_for(api.url).post_json("exports/", {})
    assert info.value.status == 400
    assert "bad date_from" in str(info.value)
    assert len(str(info.value)) < 400


def test_passthrough_statuses_are_returned_to_the_caller_unretried(local_http):
    api = local_http(lambda req: json_reply('{"message": "busy"}', 503, **{"Retry-After": "7"}))
    response = client_for(api.url).post_json("exports/", {}, passthrough=(503,))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert len(api.requests) == 1


def test_a_non_json_answer_is_one_line_naming_api_url(local_http):
    api = local_http(lambda req: Reply(200, b"<html>login</html>", {"Content-Type": "text/html"}))
    with pytest.raises(ApiError) as info:
        client_for(api.url).get_json("x")
    assert "'api_url'" in str(info.value)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", '{"message": "outside availability window"}', "outside availability window"),
        (
            "application/json",
            '{"error": {"code": 503, "message": "outside availability window"}}',
            "outside availability window",
        ),
        ("application/json", '{"detail": "Too many exports in progress"}', "Too many exports in progress"),
        ("application/json", '{"errors": [], "status": 503}', None),
        ("text/plain", "outside availability\n  window", "outside availability window"),
        ("text/html", "<html><body><h1>503 Service Unavailable</h1></body></html>", None),
        ("text/plain", "", None),
    ],
    ids=["message", "nested-error", "detail", "no-reason", "text", "html", "empty"],
)
def test_the_servers_reason_for_a_refusal_is_read_from_whatever_shape_its_answer_has(
    local_http, content_type, body, reason
):
    from tap_commerce_exports.http.api_client import server_reason

    api = local_http(lambda req: Reply(503, body.encode(), {"Content-Type": content_type}))
    response = client_for(api.url).post_json("exports/", {}, passthrough=(503,))
    assert server_reason(response) == reason


def test_a_reason_is_one_short_line_without_secrets(local_http):
    from tap_commerce_exports.http.api_client import server_reason

    register_secret("s3cr3t-token-value")
    text = "refused for s3cr3t-token-value " + "x" * 500
    api = local_http(lambda req: Reply(503, text.encode(), {"Content-Type": "text/plain"}))
    reason = server_reason(client_for(api.url).post_json("exports/", {}, passthrough=(503,)))
    assert reason is not None and len(reason) == 200 and "s3cr3t" not in reason


def _fleet(t: FakeTime) -> tuple[LimiterChain, LimiterChain, RateLimiter]:
    """Two accounts of one app: each its own limiter (16/s), one app limiter (50/s)."""
    app = RateLimiter(50, clock=t.clock, sleep=t.sleep)
    first = LimiterChain(RateLimiter(16, clock=t.clock, sleep=t.sleep), app)
    second = LimiterChain(RateLimiter(16, clock=t.clock, sleep=t.sleep), app)
    return first, second, app


def test_a_429_that_names_the_app_pauses_every_accounts_requests():
    t = FakeTime()
    first, second, _ = _fleet(t)
    assert first.throttled(3, "Too many requests for this app") is True
    with second.slot():
        assert t.now >= 103.0, "another account waits out the app's pause too"


def test_a_429_while_the_account_is_far_below_its_own_limit_is_taken_as_the_apps():
    t = FakeTime()
    first, second, _ = _fleet(t)
    assert first.throttled(2, "Too many requests") is True  # one token, nothing sent: not its limit
    with second.slot():
        assert t.now >= 102.0


def test_a_429_while_the_account_is_at_its_own_limit_pauses_only_that_account():
    t = FakeTime()
    first, second, _ = _fleet(t)
    for _ in range(16):  # the token's whole window, sent at once
        with first.slot():
            pass
    start = t.now
    assert first.throttled(4, "Too many requests") is False
    with second.slot():
        assert t.now < start + 4.0, "the other account goes on"
    with first.slot():
        assert t.now >= start + 4.0
