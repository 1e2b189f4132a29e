"""What the API client takes from the environment, and what it does not (issue 23, item 6).

`requests` with `trust_env` adds `~/.netrc` credentials to a request, replacing the Bearer
token (a `default` entry sends the user's password to any API host), and sends loopback
traffic, token included, to `HTTP_PROXY`. The client must send its token and nothing else,
straight to a loopback API, and still honour the CA bundle variables.
"""

from __future__ import annotations

import pytest
from conftest import Reply

from tap_commerce_exports.http.api_client import ApiClient
from tap_commerce_exports.http.download import FileDownloader
from tap_commerce_exports.http.ratelimit import RateLimiter
from tap_commerce_exports.http.session import EnvironmentSession  # noqa

TOKEN = "tok-env-test-4242"


def client(base: str) -> ApiClient:
    return ApiClient(
        base + "/api/", {"Authorization": f"Bearer {TOKEN}"}, RateLimiter(1000.0), auth_hint="check the token"
    )


@pytest.fixture
def netrc_default(tmp_path, monkeypatch):
    """A real `~/.netrc` in a temporary HOME with a `default` entry (matches any host)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("default login someone password users-own-password\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    return home


def test_a_netrc_default_entry_never_replaces_the_api_token(local_http, netrc_default):
    api = local_http(lambda req: Reply(200, b"{}", {"Content-Type": "application/json"}))
    c = client(api.url)
    try:
        assert c.get_json("ping") == {}
    finally:
        c.close()
    assert api.requests[0].header("Authorization") == f"Bearer {TOKEN}"


@pytest.fixture
def recording_proxy(local_http, monkeypatch):
    """A proxy on loopback that records what it is sent (and answers every request itself)."""
    proxy = local_http(lambda req: Reply(200, b'{"via": "proxy"}', {"Content-Type": "application/json"}))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return proxy


def test_loopback_api_traffic_never_goes_through_the_environments_proxy(local_http, recording_proxy):
    api = local_http(lambda req: Reply(200, b'{"via": "api"}', {"Content-Type": "application/json"}))
    c = client(api.url)
    try:
        assert c.get_json("ping") == {"via": "api"}
    finally:
        c.close()
    assert recording_proxy.requests == [], "the proxy received the token"
    assert api.requests[0].header("Authorization") == f"Bearer {TOKEN}"


def test_loopback_file_downloads_never_go_through_the_environments_proxy(
    local_http, recording_proxy, tmp_path
):
    files = local_http(lambda req: Reply(200, b"a,b\n1,2\n"))
    d = FileDownloader(timeout=(2.0, 2.0))
    try:
        d.download(files.url + "/f.csv?sig=SIGNED", tmp_path / "f.csv")
    finally:
        d.close()
    assert recording_proxy.requests == [], "the proxy received a signed URL"


def test_other_hosts_still_use_the_environments_proxy(recording_proxy):
    """A deployment behind a proxy keeps working: only loopback bypasses it (no real
    network here: the proxy answers for the host)."""
    c = client("http://api.example.test")
    try:
        assert c.get_json("ping") == {"via": "proxy"}
    finally:
        c.close()
    (seen,) = recording_proxy.requests
    assert seen.path == "http://api.example.test/api/ping"


def test_no_proxy_is_honoured_for_other_hosts(recording_proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    settings = EnvironmentSession().merge_environment_settings(
        "http://api.example.test/api/ping", {}, None, None, None
    )
    assert not settings["proxies"]


def test_the_ca_bundle_variables_still_choose_the_trusted_certificates(monkeypatch, tmp_path):
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    settings = EnvironmentSession().merge_environment_settings(
        "https://api.example.test/", {}, None, None, None
    )
    assert settings["verify"] == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    settings = EnvironmentSession().merge_environment_settings(
        "https://api.example.test/", {}, None, None, None
    )
    assert settings["verify"] == str(bundle)
    # a caller's explicit choice still wins
    settings = EnvironmentSession().merge_environment_settings(
        "https://api.example.test/", {}, None, False, None
    )
    assert settings["verify"] is False
