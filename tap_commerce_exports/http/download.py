"""Downloading export files from the providers' file hosts.

File URLs are pre-signed and live on another host than the API, so this session never
sends the API token: it has no auth headers, and a no-op auth hook keeps ``requests``
from adding credentials from ``~/.netrc``. Files stream to disk in chunks (never whole
in memory); a body shorter than its announced ``Content-Length`` is an error, not data.

A file host is a third party, so every resource it could exhaust is bounded
(:class:`DownloadLimits`): bytes per file and per export, the decoded/encoded ratio (a
small gzip body must not inflate to fill the disk), free disk space, redirects (each
hop checked: https only, plain http only on loopback) and time (one deadline for all of
an export's files, enforced by shutting the socket, so a body that drips a byte a
second is cut off too). :meth:`FileDownloader.cancel` stops every download at once,
from any thread, within a moment: the sync's stop (SIGTERM) must not wait on a peer.
"""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.http.api_client import USER_AGENT
from tap_commerce_exports.http.hosts import is_loopback
from tap_commerce_exports.http.problems import transport_problem
from tap_commerce_exports.http.redact import redact_url
from tap_commerce_exports.http.session import EnvironmentSession

LOGGER = logging.getLogger("tap_commerce_exports.download")
CHUNK = 1 << 20
MIB = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)


class DownloadError(Exception):
    """A download failed in a way worth retrying."""


class UrlExpired(DownloadError):
    """The file host refused the signed URL (expired or revoked): ask for a new one."""


class TruncatedDownload(DownloadError):
    """Fewer bytes arrived than the file host announced."""


class DownloadRefused(UserError):
    """A file host broke a bound (size, ratio, time, scheme, disk): not retried, the
    stream stops with this one line, which names the setting that draws the bound."""


class DownloadStopped(UserError):
    """The sync is stopping (SIGTERM, or the consumer went away): downloads end now."""


#: Decoded bytes per byte on the wire a download may reach (beyond `ratio_floor_bytes`).
#: Measured: the sandbox's CSV exports gzip 3.2-7.0x and its Clover JSON 6.9-8.8x; the most
#: repetitive genuine text (sequential ids, empty cells) ~17x. 50x leaves 2.5x headroom over
#: the 5-20x text reaches, and a bomb (1000x) writes a quarter of what 200x let it write.
DEFAULT_MAX_RATIO = 50


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds on what a file host can make the tap download. Defaults are generous:
    far above any real export, yet far below what a hostile host could otherwise take."""

    max_file_bytes: int = 20 * 1024 * MIB  # 20 GiB
    max_export_bytes: int = 100 * 1024 * MIB  # 100 GiB
    max_ratio: int = DEFAULT_MAX_RATIO  # decoded bytes per byte on the wire
    timeout: float = 7200.0  # seconds for all files of one export, retries included
    max_redirects: int = 5
    min_free_bytes: int = 64 * MIB  # never fill the disk to the last byte
    #: below this many decoded bytes the ratio is not checked (tiny files inflate a lot)
    ratio_floor_bytes: int = 16 * MIB


def download_limits(settings: Any) -> DownloadLimits:
    """The limits the user's settings ask for (see ``settings.py``)."""
    return DownloadLimits(
        max_file_bytes=settings.max_download_file_mb * MIB,
        max_export_bytes=settings.max_download_export_mb * MIB,
        max_ratio=settings.max_decompression_ratio,
        timeout=float(settings.download_timeout),
    )


class ExportBudget:
    """Bytes and time left for ONE export's files (its files may download in parallel)."""

    def __init__(self, limits: DownloadLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.deadline = clock() + limits.timeout
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> int:
        """Count ``count`` more bytes; return the export's total so far."""
        with self._lock:
            self._bytes += count
            return self._bytes

    def give_back(self, count: int) -> None:
        """A failed attempt's bytes are deleted with its file: they no longer count."""
        with self._lock:
            self._bytes -= count


def url_allowed(url: str) -> str | None:
    """Why ``url`` may not be fetched (None if it may): https only, http on loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "it is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme == "https" and host:
        return None
    if scheme == "http" and is_loopback(host):
        return None
    if scheme == "http":
        return f"it uses plain http for '{host}' (only https, or http on loopback, is fetched)"
    return f"its scheme is '{scheme or '(none)'}' (only https, or http on loopback, is fetched)"


class _StripAuth(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


class _NoCredentialsSession(EnvironmentSession):
    """On a redirect, ``requests`` re-adds ``~/.netrc`` credentials (``rebuild_auth``)
    without calling the session's auth hook: never send any."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        prepared_request.headers.pop("Authorization", None)


class _Transfer:
    """One response in flight, so that a deadline or :meth:`FileDownloader.cancel`
    can cut it from another thread (shutting its socket unblocks the reading thread)."""

    def __init__(self) -> None:
        self.response: requests.Response | None = None
        self.written = 0  # decoded bytes of this attempt, counted in the export's budget
        self.cut_for: str | None = None  # "deadline" or "stop" once cut
        self._lock = threading.Lock()

    def attach(self, response: requests.Response) -> None:
        with self._lock:
            self.response = response
            cut = self.cut_for
        if cut is not None:
            self._shutdown(response)

    def cut(self, why: str) -> None:
        with self._lock:
            if self.cut_for is None:
                self.cut_for = why
            response = self.response
        if response is not None:
            self._shutdown(response)

    @staticmethod
    def _socket_of(response: requests.Response) -> socket.socket | None:
        """The socket the body is read from. The connection's own attribute is cleared by
        ``http.client`` when the peer announced it will close (HTTP/1.0, ``Connection:
        close``); the body's file object still holds the socket then."""
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is None:
            body = getattr(getattr(response.raw, "_fp", None), "fp", None)
            sock = getattr(getattr(body, "raw", None), "_sock", None)
        return sock if isinstance(sock, socket.socket) else None

    @classmethod
    def _shutdown(cls, response: requests.Response) -> None:
        sock = cls._socket_of(response)
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing to cut


class FileDownloader:
    """Streams signed file URLs to local files, within :class:`DownloadLimits`."""

    def __init__(
        self,
        timeout: tuple[float, float] = (10.0, 120.0),
        limits: DownloadLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = _NoCredentialsSession()
        self._session.auth = _StripAuth()
        self._session.headers["User-Agent"] = USER_AGENT
        self._timeout = timeout
        self.limits = limits or DownloadLimits()
        self._clock = clock
        self._stopped = threading.Event()
        self._active: set[_Transfer] = set()
        self._active_lock = threading.Lock()
        self._budgets: weakref.WeakKeyDictionary[Any, ExportBudget] = weakref.WeakKeyDictionary()
        self._budgets_lock = threading.Lock()

    # ------------------------------------------------------------------ control
    def close(self) -> None:
        self._session.close()

    def cancel(self) -> None:
        """Stop every download now and refuse new ones (idempotent, any thread)."""
        self._stopped.set()
        with self._active_lock:
            transfers = list(self._active)
        for transfer in transfers:
            transfer.cut("stop")

    def sleep(self, seconds: float) -> None:
        """Pause between attempts, ending at once when :meth:`cancel` is called."""
        self._stopped.wait(max(0.0, seconds))

    def budget_for(self, export: Any) -> ExportBudget:
        """The byte and time budget shared by all files of ``export`` (any weakref-able
        object standing for one export, e.g. its job), started on first use."""
        with self._budgets_lock:
            budget = self._budgets.get(export)
            if budget is None:
                budget = ExportBudget(self.limits, self._clock)
                self._budgets[export] = budget
            return budget

    # ------------------------------------------------------------------ download
    def download(self, url: str, dest: Path, budget: ExportBudget | None = None) -> int:
        """Write the file at ``url`` to ``dest``; return its size in bytes."""
        budget = budget or ExportBudget(self.limits, self._clock)
        shown = redact_url(url)
        transfer = _Transfer()
        with self._active_lock:
            self._active.add(transfer)
        remaining = budget.deadline - self._clock()
        timer = threading.Timer(max(0.0, remaining), transfer.cut, args=("deadline",))
        timer.daemon = True
        timer.start()
        try:
            if self._stopped.is_set():
                raise DownloadStopped(f"download of {shown} not started: the sync is stopping")
            written = self._fetch(url, dest, shown, budget, transfer)
        except (DownloadError, requests.RequestException, OSError) as exc:
            budget.give_back(transfer.written)
            self._raise_if_cut(transfer, shown)
            if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise self._disk_full(dest) from None
                raise DownloadError(f"download of {shown} failed ({transport_problem(exc)})") from None
            if isinstance(exc, DownloadError):
                raise
            if isinstance(exc, requests.exceptions.ChunkedEncodingError):
                raise TruncatedDownload(f"download of {shown} broke off mid-body") from None
            if isinstance(exc, requests.exceptions.TooManyRedirects):
                raise self._too_many_redirects(shown) from None
            raise DownloadError(f"download of {shown} broke off ({transport_problem(exc)})") from None
        except UserError:
            budget.give_back(transfer.written)
            raise
        except Exception as exc:  # urllib3 ProtocolError / IncompleteRead / DecodeError
            budget.give_back(transfer.written)
            self._raise_if_cut(transfer, shown)
            name = type(exc).__name__
            if "Incomplete" in name or "Protocol" in name:
                raise TruncatedDownload(f"download of {shown} broke off mid-body") from None
            if "Decode" in name:
                raise DownloadError(
                    f"download of {shown}: the body does not match its Content-Encoding"
                ) from None
            if isinstance(exc, urllib3.exceptions.HTTPError):  # e.g. a read timeout mid-body
                raise DownloadError(f"download of {shown} broke off ({transport_problem(exc)})") from None
            raise
        finally:
            timer.cancel()
            with self._active_lock:
                self._active.discard(transfer)
        LOGGER.debug("downloaded %s (%d bytes)", shown, written)
        return written

    def _raise_if_cut(self, transfer: _Transfer, shown: str) -> None:
        if transfer.cut_for == "stop" or self._stopped.is_set():
            raise DownloadStopped(f"download of {shown} stopped: the sync is stopping") from None
        if transfer.cut_for == "deadline":
            raise DownloadRefused(
                f"the files of this export did not finish downloading within "
                f"{self.limits.timeout:g}s (at {shown}): raise 'download_timeout' if the file host is that slow"
            ) from None

    def _open(self, url: str, shown: str, transfer: _Transfer) -> requests.Response:
        """GET ``url``, following at most ``max_redirects`` redirects, each hop checked."""
        for _hop in range(self.limits.max_redirects + 1):
            refusal = url_allowed(url)
            if refusal is not None:
                raise DownloadRefused(f"file URL {redact_url(url)} refused: {refusal}")
            response = self._session.get(url, stream=True, timeout=self._timeout, allow_redirects=False)
            transfer.attach(response)
            if response.status_code not in _REDIRECTS:
                return response
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise DownloadError(f"file host answered a redirect without a Location for {shown}")
            url = urljoin(url, location)
        raise self._too_many_redirects(shown)

    def _too_many_redirects(self, shown: str) -> DownloadRefused:
        return DownloadRefused(
            f"download of {shown} refused: more than {self.limits.max_redirects} redirects"
        )

    def _fetch(self, url: str, dest: Path, shown: str, budget: ExportBudget, transfer: _Transfer) -> int:
        limits = self.limits
        with self._open(url, shown, transfer) as response:
            if response.status_code in (401, 403, 404, 410):
                raise UrlExpired(f"file host answered HTTP {response.status_code} for {shown}")
            if response.status_code != 200:
                raise DownloadError(f"file host answered HTTP {response.status_code} for {shown}")
            announced_text = response.headers.get("Content-Length")
            announced = (
                int(announced_text)
                if announced_text and announced_text.isascii() and announced_text.isdigit()
                else None
            )
            if announced is not None and announced > limits.max_file_bytes:
                raise self._too_big(shown, announced, "file")
            self._check_free_disk(dest, announced or 0)
            raw = response.raw
            written = 0
            chunks = 0
            with open(dest, "wb") as out:
                for chunk in raw.stream(CHUNK, decode_content=True):
                    out.write(chunk)
                    size = len(chunk)
                    written += size
                    transfer.written = written
                    total = budget.take(size)
                    if written > limits.max_file_bytes:
                        raise self._too_big(shown, written, "file")
                    if total > limits.max_export_bytes:
                        raise self._too_big(shown, total, "export")
                    if written > limits.ratio_floor_bytes and written > limits.max_ratio * max(1, raw.tell()):
                        raise DownloadRefused(
                            f"download of {shown} refused: it inflates more than {limits.max_ratio}x "
                            f"({raw.tell()} bytes on the wire gave over {written} bytes), which no "
                            "export file does; raise 'max_decompression_ratio' if it is genuine"
                        )
                    chunks += 1
                    if chunks % 16 == 0:
                        self._check_free_disk(dest, 0)
        if transfer.cut_for is not None:
            self._raise_if_cut(transfer, shown)
        # Content-Length counts bytes on the wire (before any Content-Encoding is undone).
        if announced is not None and raw.tell() < announced:
            raise TruncatedDownload(f"download of {shown} is truncated: {raw.tell()} of {announced} bytes")
        return written

    def _too_big(self, shown: str, size: int, scope: str) -> DownloadRefused:
        if scope == "file":
            limit, setting = self.limits.max_file_bytes, "max_download_file_mb"
        else:
            limit, setting = self.limits.max_export_bytes, "max_download_export_mb"
        return DownloadRefused(
            f"download of {shown} refused: the {scope} reached {size} bytes, over the "
            f"{limit // MIB} MiB limit; raise '{setting}' if exports are really that large"
        )

    def _check_free_disk(self, dest: Path, needed: int) -> None:
        try:
            free = shutil.disk_usage(dest.parent).free
        except OSError:
            return  # cannot tell: writing will say if the disk is full
        if free - needed < self.limits.min_free_bytes:
            raise self._disk_full(dest, needed)

    def _disk_full(self, dest: Path, needed: int = 0) -> DownloadRefused:
        try:
            free = shutil.disk_usage(dest.parent).free
        except OSError:
            free = 0
        need = f" ({needed} bytes announced)" if needed else ""
        return DownloadRefused(
            f"not enough free disk space in {dest.parent.parent} for the download{need}: "
            f"{free // MIB} MiB free, {self.limits.min_free_bytes // MIB} MiB kept free; free "
            "some space or set TMPDIR to a larger disk"
        )
