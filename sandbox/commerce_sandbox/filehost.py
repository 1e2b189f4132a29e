"""The "media storage" host serving export files (``localhost``, not ``127.0.0.1``).

Behaves like S3 behind a pre-signed URL: no token needed, ``403`` with an XML
``AccessDenied`` body when the URL expired or the signature is wrong, exact
``Content-Length``. Any request here carrying an ``Authorization`` header is counted:
a correct tap never sends its API token to the storage host.
"""

from __future__ import annotations

import hmac
import os

from commerce_sandbox import bad_files
from commerce_sandbox.http_util import Request, Response
from commerce_sandbox.state import SandboxState

_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><Expires>{expires}</Expires>"
    "<ServerTime>{now}</ServerTime></Error>"
)
_NO_SUCH_KEY = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
_BAD_SIGNATURE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
    "<Message>The request signature we calculated does not match the signature you provided."
    "</Message></Error>"
)


def file_account(url_path: str) -> str:
    """The store or merchant a file belongs to: ``/media/{store}/...``,
    ``/clover-files/{merchant}/...``."""
    parts = url_path.split("/")
    return parts[2] if len(parts) > 2 else ""


def _expired(status: int, expires: str, now: int) -> Response:
    """An expired URL's answer: ``file_expired_status`` (403, 404 or 410; the contract
    says "typically" any), each with the body such a storage host sends."""
    if status == 404:
        return _xml(404, _NO_SUCH_KEY)
    if status == 410:
        return Response(410, b"Gone: this link has expired", "text/plain")
    return _xml(403, _EXPIRED.format(expires=expires, now=now))


def _xml(status: int, text: str) -> Response:
    return Response(status, text.encode(), "application/xml")


def _hold(state: SandboxState) -> None:
    """Half a file was sent: hold the connection while ``fault_hold_download`` is on."""
    state.stats.incr("downloads_held")
    while state.config.fault_hold_download and not state.stopping.wait(0.02):
        pass


def handle(state: SandboxState, req: Request, kind: str) -> Response:
    """Serve a file GET (``kind`` is ``nc_file`` or ``clover_file`` for the stats)."""
    state.stats.request(kind)
    if req.header("Authorization") is not None:
        state.stats.incr("auth_header_on_file_host")
    if req.method not in ("GET", "HEAD"):
        return _xml(405, "<Error><Code>MethodNotAllowed</Code></Error>")
    entry = state.files.get(req.path)
    if entry is None or not os.path.exists(entry.path):
        return _xml(
            404, "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
        )
    expires_text = req.query.get("expires", "")
    sig = req.query.get("signature", "")
    if not expires_text.isdigit() or not hmac.compare_digest(sig, state.sign(req.path, int(expires_text))):
        state.stats.incr("bad_signature_answers")
        return _xml(403, _BAD_SIGNATURE)
    now = state.clock.wall()
    attempt = state.file_attempts.attempt(req.path)
    cfg = state.config
    faulty = state.fault_applies(file_account(req.path))
    if now > int(expires_text) or (faulty and cfg.fault_expired_url and attempt == 1):
        state.stats.incr("expired_url_answers")
        return _expired(cfg.file_expired_status, expires_text, int(now))
    served = state.file_attempts.serve(req.path)
    disk = bad_files.file_to_serve(state, req.path, entry)
    size = os.path.getsize(disk)
    resp = Response(200, b"", entry.content_type + ("; charset=utf-8" if "csv" in entry.content_type else ""))
    resp.file_path = disk
    if faulty and cfg.fault_hold_download and size > 1:
        resp.truncate_to = max(1, size // 2)
        resp.hold = lambda: _hold(state)
    elif faulty and cfg.fault_truncated_download and served == 1 and size > 1:
        resp.truncate_to = max(1, size // 2)
        state.stats.incr("truncated_downloads_sent")
    else:
        state.stats.incr("downloads_served")
    return resp
