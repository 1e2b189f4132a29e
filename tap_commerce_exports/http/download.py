"""Downloading export files from the providers' file hosts.

File URLs are pre-signed and live on another host than the API, so this session never
sends the API token: it has no auth headers, and a no-op auth hook keeps ``requests``
from adding credentials from ``~/.netrc``. Files stream to disk in chunks (never whole
in memory); a body shorter than its announced ``Content-Length`` is an error, not data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import requests

from tap_commerce_exports.http.api_client import USER_AGENT
from tap_commerce_exports.http.problems import transport_problem
from tap_commerce_exports.http.redact import redact_url

LOGGER = logging.getLogger("tap_commerce_exports.download")
CHUNK = 1 << 20


class DownloadError(Exception):
    """A download failed in a way worth retrying."""


class UrlExpired(DownloadError):
    """The file host refused the signed URL (expired or revoked): ask for a new one."""


class TruncatedDownload(DownloadError):
    """Fewer bytes arrived than the file host announced."""


class _StripAuth(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class _NoCredentialsSession(requests.Session):
    """On a redirect, ``requests`` re-adds ``~/.netrc`` credentials (``rebuild_auth``)
    without calling the session's auth hook: never send any."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        prepared_request.headers.pop("Authorization", None)


class FileDownloader:
    """Streams signed file URLs to local files."""

    def __init__(self, timeout: tuple[float, float] = (10.0, 120.0)) -> None:
        self._session = _NoCredentialsSession()
        self._session.auth = _StripAuth()
        self._session.headers["User-Agent"] = USER_AGENT
        self._timeout = timeout

    def close(self) -> None:
        self._session.close()

    def download(self, url: str, dest: Path) -> int:
        """Write the file at ``url`` to ``dest``; return its size in bytes."""
        shown = redact_url(url)
        try:
            with self._session.get(url, stream=True, timeout=self._timeout, allow_redirects=True) as response:
                if response.status_code in (401, 403, 404, 410):
                    raise UrlExpired(f"file host answered HTTP {response.status_code} for {shown}")
                if response.status_code != 200:
                    raise DownloadError(f"file host answered HTTP {response.status_code} for {shown}")
                announced = response.headers.get("Content-Length")
                written = 0
                with open(dest, "wb") as out:
                    for chunk in response.raw.stream(CHUNK, decode_content=True):
                        out.write(chunk)
                        written += len(chunk)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadError(f"download of {shown} broke off ({transport_problem(exc)})") from None
        except requests.exceptions.ChunkedEncodingError:
            raise TruncatedDownload(f"download of {shown} broke off mid-body") from None
        except Exception as exc:  # urllib3 ProtocolError / IncompleteRead
            name = type(exc).__name__
            if "Incomplete" in name or "Protocol" in name:
                raise TruncatedDownload(f"download of {shown} broke off mid-body") from None
            raise
        if announced is not None and announced.isdigit() and written < int(announced):
            raise TruncatedDownload(f"download of {shown} is truncated: {written} of {announced} bytes")
        LOGGER.debug("downloaded %s (%d bytes)", shown, written)
        return written
