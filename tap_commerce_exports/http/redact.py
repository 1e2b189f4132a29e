"""Keep secrets out of logs and error texts.

Signed download URLs carry their credentials in the query string, and exception texts
from ``requests``/``urllib3`` embed full URLs, so everything user-visible about a URL
goes through :func:`redact_url`, and a logging filter scrubs the token and query
strings from every record, including urllib3's own debug lines.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

#: Any URL, whatever its scheme (``ftp://``, ``s3://``, ``gs://``...): a file host may
#: redirect anywhere, and a signed query is a credential on every scheme.
_QUERY_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"]+)\?[^\s'\"]*")
#: A request target without scheme and host, as urllib3's debug lines print it:
#: ``"GET /media/x.csv?expires=...&signature=... HTTP/1.1"``.
_PATH_QUERY_RE = re.compile(r"((?:^|[\s\"'(])/[^\s?#'\"]*)\?[^\s'\"]*")
#: User info in a URL (``scheme://user:password@host``) is a credential too.
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"]+@")
_secrets: set[str] = set()


def redact_url(url: str) -> str:
    """The URL without query string, fragment or user info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`scrub` and the log filter mask it."""
    if value and len(value) >= 4:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Mask registered secrets, URL user info and URL query strings (any scheme) in free text."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _USERINFO_RE.sub(r"\1***@", text)
    text = _QUERY_RE.sub(r"\1?<redacted>", text)
    return _PATH_QUERY_RE.sub(r"\1?<redacted>", text)


class SecretsFilter(logging.Filter):
    """A logging filter that scrubs every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must not break logging
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_log_filter() -> None:
    """Attach the filter to every handler of the root logger, and to urllib3's loggers."""
    flt = SecretsFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretsFilter) for f in handler.filters):
            handler.addFilter(flt)
    for name in ("urllib3", "urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretsFilter) for f in logger.filters):
            logger.addFilter(flt)
