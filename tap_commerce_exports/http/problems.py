"""Our own words for what went wrong on the wire.

Why: ``requests``/``urllib3`` exception names and texts (``ConnectionError``,
``HTTPConnectionPool(host=..., port=...): Max retries exceeded ...``) change between
releases and say little to a user. Error lines and tests use these phrases instead, so what
users read is ours and stays put when a dependency is upgraded.
"""

from __future__ import annotations

import errno
import socket
import ssl

import requests


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause or context of ``exc`` (requests wraps urllib3 wraps socket)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        nested = current.__cause__ or current.__context__
        if nested is None and current.args and isinstance(current.args[0], BaseException):
            nested = current.args[0]
        reason = getattr(current, "reason", None)
        if nested is None and isinstance(reason, BaseException):
            nested = reason
        if nested is None:
            break
        current = nested
    return current


def transport_problem(exc: BaseException) -> str:
    """A short phrase for a failed connection or read: ``connection refused``, ``timed out``, ..."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connecting timed out"
    if isinstance(exc, requests.Timeout):
        return "the answer timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed (certificate or protocol)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off mid-answer"
    root = _root_cause(exc)
    if isinstance(root, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(root, ssl.SSLError):
        return "the TLS handshake failed (certificate or protocol)"
    if isinstance(root, (TimeoutError, socket.timeout)):
        return "the answer timed out"
    if isinstance(root, ConnectionRefusedError) or getattr(root, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(root, ConnectionResetError) or getattr(root, "errno", None) == errno.ECONNRESET:
        return "the connection was reset"
    if isinstance(root, OSError) and root.errno == errno.EMFILE:
        return "too many open files in this process"
    text = str(root).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "failed to resolve" in text:
        return "the host name does not resolve"
    if "refused" in text:
        return "connection refused"
    if "remote end closed" in text or "connection aborted" in text or "reset" in text:
        return "the connection was closed by the other side"
    return "the connection failed"
