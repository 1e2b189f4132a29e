"""The one way the tap talks to a provider's API.

* The token and version headers go to the API's own origin only: absolute URLs (like
  pagination links) to another origin are refused, and redirects are never followed
  automatically, so a redirect can't carry the token to another host.
* 429: wait for ``Retry-After`` (shared by all threads via the limiter), then retry.
* 5xx (except statuses the caller wants back, e.g. Clover's 503 on create) and
  connection errors: exponential backoff with the ``backoff`` library, bounded.
* 401/403: :class:`AuthError` naming the setting to fix; never the token.
* A request that is not safe to repeat (``idempotent=False``: a create) is NOT retried
  once it may have reached the server (a 5xx, a read timeout, a dropped connection):
  :class:`AnswerLost` says so, and the caller finds out what the server did.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import backoff
import requests

from tap_commerce_exports import __version__
from tap_commerce_exports.errors import AuthError, UserError
from tap_commerce_exports.http.problems import transport_problem
from tap_commerce_exports.http.ratelimit import Limiter
from tap_commerce_exports.http.redact import redact_url, scrub
from tap_commerce_exports.http.session import EnvironmentSession

LOGGER = logging.getLogger("tap_commerce_exports.http")
USER_AGENT = f"tap-commerce-exports/{__version__}"


class ApiError(UserError):
    """The API answered with an error status the tap cannot recover from."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AnswerLost(UserError):
    """A request that is not safe to repeat may have reached the server, but no answer came."""


class _Retryable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def _retry_reason(exc: BaseException) -> str:
    """Why a try failed, in our words: ours as written (``HTTP 503``), a transport failure
    as ``transport_problem`` says it (never urllib3's ``HTTPConnectionPool(...)`` text)."""
    if isinstance(exc, _Retryable):
        return scrub(str(exc))
    return transport_problem(exc)


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Parse ``Retry-After`` (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return default


class ApiClient:
    """Authenticated, rate-limited, retrying JSON client for one API origin."""

    #: Exponential backoff for 5xx / connection errors (tests shrink these).
    backoff_base = 0.5
    backoff_max_value = 30.0
    max_tries = 6
    max_throttle_retries = 30

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        limiter: Limiter,
        *,
        auth_hint: str,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        self.base_url = base_url
        parts = urlsplit(base_url)
        self._origin = (parts.scheme, parts.hostname, parts.port)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **headers}
        self._limiter = limiter
        self._timeout = timeout
        self._auth_hint = auth_hint
        # no ~/.netrc (it would replace the token), no proxy for loopback: see http/session.py
        self._session = EnvironmentSession()

    def close(self) -> None:
        self._session.close()

    def url_for(self, path_or_url: str) -> str:
        url = urljoin(self.base_url, path_or_url)
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) != self._origin:
            raise ApiError(
                f"refusing to send the API token to another host ({redact_url(url)}); check 'api_url'"
            )
        return url

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        passthrough: Collection[int] = (),
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one request with retries; return the response (2xx or a passthrough status)."""
        url = self.url_for(path_or_url)
        throttled = 0
        # a connect timeout sent nothing: safe to retry even when the request is not
        retried: tuple[type[Exception], ...] = (
            (_Retryable, requests.ConnectionError, requests.Timeout)
            if idempotent
            else (requests.ConnectTimeout,)
        )

        @backoff.on_exception(
            backoff.expo,
            retried,
            max_tries=self.max_tries,
            factor=self.backoff_base,
            max_value=self.backoff_max_value,
            jitter=backoff.full_jitter,
            on_backoff=lambda d: LOGGER.warning(
                "%s %s failed (%s); retry %d in %.1fs",
                method,
                redact_url(url),
                _retry_reason(d["exception"]),
                d["tries"],
                d["wait"],
            ),
            logger=None,
        )
        def attempt() -> requests.Response:
            nonlocal throttled
            while True:
                with self._limiter.slot():
                    response = self._session.request(
                        method,
                        url,
                        json=json,
                        params=params,
                        headers=self._headers,
                        timeout=self._timeout,
                        allow_redirects=False,
                    )
                status = response.status_code
                if status in passthrough:
                    return response
                if status == 429:
                    throttled += 1
                    wait = retry_after_seconds(
                        response.headers.get("Retry-After") or response.headers.get("retry-after")
                    )
                    if throttled > self.max_throttle_retries:
                        raise ApiError(
                            f"{method} {redact_url(url)} stayed rate-limited (429) after "
                            f"{throttled} waits; lower 'max_requests_per_second'",
                            429,
                        )
                    if self._limiter.throttled(wait, server_reason(response)):
                        LOGGER.info(
                            "rate limited by the API for the whole app; every account waits %.1fs", wait
                        )
                    else:
                        LOGGER.info("rate limited by the API; waiting %.1fs as asked (Retry-After)", wait)
                    continue
                if status >= 500:
                    raise _Retryable(f"HTTP {status}")
                if status in (401, 403):
                    raise AuthError(
                        f"the API refused the credentials (HTTP {status} on {redact_url(url)}): "
                        f"{self._auth_hint}"
                    )
                if 300 <= status < 400:
                    raise ApiError(
                        f"{method} {redact_url(url)} answered a redirect (HTTP {status}); "
                        "the tap does not follow API redirects: check 'api_url'",
                        status,
                    )
                if status >= 400:
                    raise ApiError(
                        f"{method} {redact_url(url)} failed with HTTP {status}: "
                        f"{scrub(_short_body(response))}",
                        status,
                    )
                return response

        try:
            return attempt()
        except _Retryable as exc:
            if not idempotent:
                raise AnswerLost(f"{method} {redact_url(url)} answered {exc}") from None
            raise ApiError(
                f"{method} {redact_url(url)} kept failing ({exc}) after {self.max_tries} tries; "
                "the API may be down, try again later",
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                raise AnswerLost(
                    f"{method} {redact_url(url)} got no answer ({transport_problem(exc)})"
                ) from None
            raise ApiError(
                f"cannot reach the API at {redact_url(url)} ({transport_problem(exc)}) after "
                f"{self.max_tries} tries: check 'api_url' and the network",
            ) from None

    def get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        return response_json(self.request("GET", path_or_url, **kwargs))

    def post_json(self, path_or_url: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("POST", path_or_url, json=body, **kwargs)


def response_json(response: requests.Response) -> Any:
    """Decode a response body as JSON, or raise a clear ApiError."""
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: a body nested thousands deep
        raise ApiError(
            f"the API answered {redact_url(response.url)} with something that is not JSON "
            f"(HTTP {response.status_code}): check 'api_url'"
        ) from None


#: Keys under which an API's error body may carry its reason, in the order tried.
_REASON_KEYS = ("message", "detail", "reason", "error_description", "description", "error")


def server_reason(response: requests.Response, limit: int = 200) -> str | None:
    """The server's own words for a refusal, or None if its answer gives none.

    What an error body looks like is often not published (Clover's 503), so this reads
    the usual shapes: ``{"message": R}``, ``{"error": {"message": R}}``, ``{"detail": R}``
    ..., or a short plain-text body. Markup (an HTML error page) is not a reason. The
    words are the server's; the sentence around them is the caller's. Secrets are
    scrubbed, and the text is one line of at most ``limit`` characters.
    """
    text = (response.text or "").strip()
    if not text:
        return None
    reason: object = None
    try:
        reason = _reason_in(response.json())
    except ValueError:  # not JSON: plain text is a reason, markup is not
        reason = None if text.startswith("<") else text
    if not isinstance(reason, str) or not reason.strip():
        return None
    one_line = scrub(" ".join(reason.split()))  # before cutting: a cut secret is no longer found
    if len(one_line) > limit:
        one_line = one_line[: limit - 3] + "..."
    return one_line


def _reason_in(body: object, depth: int = 0) -> object:
    if isinstance(body, str):
        return body
    if isinstance(body, list) and body and depth < 3:
        return _reason_in(body[0], depth + 1)
    if isinstance(body, dict) and depth < 3:
        for key in _REASON_KEYS:
            if key in body:
                found = _reason_in(body[key], depth + 1)
                if isinstance(found, str) and found.strip():
                    return found
    return None


def _short_body(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:200] if text else "(empty body)"
