"""The one `requests.Session` the tap talks through: what it takes from the environment.

Why not `requests`' own `trust_env`: it is all or nothing. With it, `~/.netrc` credentials
replace the `Authorization` header (a `default` entry sends the user's password as Basic
auth to any API host, in place of the Bearer token), and `HTTP_PROXY` receives loopback
traffic, token or signed URL included. Without it, a deployment behind a proxy or with a
corporate CA stops working. So: never `.netrc`; the proxy variables (and `NO_PROXY`) for
hosts other than this machine; the CA bundle variables (`REQUESTS_CA_BUNDLE`, then
`CURL_CA_BUNDLE`, as `requests` reads them) whenever the caller did not choose.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies

from tap_commerce_exports.http.hosts import is_loopback

if TYPE_CHECKING:
    from requests.sessions import _Settings  # the stubs' name of what this returns

#: Where `requests` looks for a CA bundle in the environment, in its order.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class EnvironmentSession(requests.Session):
    """A session that never reads `~/.netrc` and never proxies loopback (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no .netrc, here and on redirects (`rebuild_auth`)

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        target = url.decode() if isinstance(url, bytes) else (url or "")
        if not is_loopback(urlsplit(target).hostname):
            settings["proxies"] = {**get_environ_proxies(target), **(settings["proxies"] or {})}
        if verify is None or verify is True:
            bundle = next((os.environ[n] for n in CA_BUNDLE_VARIABLES if os.environ.get(n)), None)
            if bundle and self.verify is True:
                settings["verify"] = bundle
        return settings
