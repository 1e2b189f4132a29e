"""Next Commerce ``export.created`` webhook delivery.

Runs in the export's background thread (never in a request handler). The signature
is computed over exactly the bytes sent. By default those are
``json.dumps(envelope).encode()``, which is what the provider's own verification example
re-serializes; with ``raw`` (setting ``webhook_signing``) the body is compact JSON, so
only a receiver that checks the raw bytes verifies it, as live deliveries have been
seen to need. A failing or slow receiver is retried a few times with backoff and then
given up on; it can never break the sandbox. Every answer's status is returned, so the
sandbox can count what a receiver answered (the real service disables a webhook that
keeps failing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

API_VERSION = "2024-04-01"
#: Seconds to wait before each retry after a failed delivery.
RETRY_DELAYS = (0.2, 1.0)


def envelope(export: dict[str, Any], store: str, target: str) -> dict[str, Any]:
    """The documented envelope around an Export object."""
    return {
        "api_version": API_VERSION,
        "data": export,
        "event_id": str(uuid.uuid4()),
        "event_type": "export.created",
        "object": "export",
        "webhook": {"events": ["export.created"], "id": 1, "store": store, "target": target},
    }


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed by the webhook's signing secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def deliver(
    url: str, secret: str | None, payload: dict[str, Any], stop: threading.Event, *, raw: bool = False
) -> list[int]:
    """POST ``payload`` to ``url`` until a receiver answers 2xx; the status of every try
    (0: no answer). ``raw``: compact JSON signed over its own bytes."""
    body = (json.dumps(payload, separators=(",", ":")) if raw else json.dumps(payload)).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "tap-commerce-exports-sandbox"}
    if secret:
        headers["X-29Next-Signature"] = signature(secret, body)
    answers: list[int] = []
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=20) as resp:
                answers.append(resp.status)
                if 200 <= resp.status < 300:
                    return answers
        except urllib.error.HTTPError as exc:
            answers.append(exc.code)
        except (urllib.error.URLError, OSError, ValueError):
            answers.append(0)
        if attempt < len(RETRY_DELAYS) and stop.wait(RETRY_DELAYS[attempt]):
            return answers
    return answers
