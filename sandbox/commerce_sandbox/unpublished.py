"""Facts of real files and deliveries no provider publishes, each a sandbox setting.

Why a module of their own: the tap and the sandbox used to agree on facts no document
backs (every line file has a timestamp, the orders key is headed ``number``, timestamps
carry an offset, deliveries are signed over ``json.dumps`` of the body, 30 days pass
Clover's cap...), so the suite could not see the tap fail on a store that differs. Each
such fact is a field of :class:`UnpublishedFacts` (a base of ``SandboxConfig``, so the
same names work in the constructor, ``POST /_sandbox/control`` and the command line),
and this module holds what the sandbox does with them:

=========================================================  ================================
Unpublished fact                                           Setting
=========================================================  ================================
NC: line files without a timestamp (the spec's
``SubscriptionLine``, ``CartLine``, ``RefundLine``,
``FulfillmentOrderLine`` have none)                        ``line_files_timed``
NC: the orders key headed ``number`` or ``Order Number``   ``order_key_header``
NC: timestamps written without an offset, in the
store's time zone (``GET /store/`` ``timezone``)           ``naive_timestamps``,
                                                           ``store_timezone``
NC: whether the token may read ``/store/``, ``/metadata/``  ``store_read``, ``metadata_read``
NC: the signature over the raw body, not ``json.dumps``    ``webhook_signing``
NC: the store-wide subscription's other deliveries
(dashboard exports, other event types)                     ``webhook_noise``
Clover: does a range of exactly 30 days pass?              ``clover_strict_range``
=========================================================  ================================

The ground truth (``/_sandbox/truth``) is the data as the store holds it, whatever shape
its files take: instants with their offsets, the orders key under ``number``, the
creation time of every line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from commerce_sandbox.config import SandboxConfig

#: Line types whose spec object has no time field (``OrderLine`` has ``created_at``).
UNTIMED_LINE_TYPES = frozenset(
    {"subscription_line_items", "open_cart_line_items", "return_line_items", "fulfillment_line_items"}
)
ORDER_KEY_HEADERS = ("number", "order_number")
WEBHOOK_SIGNINGS = ("reserialized", "raw")

#: The store's metadata definitions (``GET /metadata/``), one per metadata column the
#: sandbox's files carry: (name as in the file, key, object, type). One is typed (a
#: boolean), the rest are text, as a store's usually are.
METADATA_DEFINITIONS: tuple[tuple[str, str, str, str], ...] = (
    ("Gift Message", "gift_message", "order", "text"),
    ("utm_campaign", "utm_campaign", "attribution", "text"),
    ("Engraving Text", "engraving_text", "line", "text"),
    ("Loyalty Tier", "loyalty_tier", "customer", "text"),
    ("Internal Notes", "internal_notes", "dispute", "text"),
    ("Gift Wrap", "gift_wrap", "line", "boolean"),
)


@dataclass
class UnpublishedFacts:
    """The sandbox's settings for facts no provider publishes (see the module's table).
    Every default is what the sandbox did before they were settings."""

    #: Whether line files carry their parent's creation time; False: the line types of
    #: ``UNTIMED_LINE_TYPES`` have no timestamp column at all.
    line_files_timed: bool = True
    #: The orders file's key column: "number" or "order_number" ("Order Number" titled).
    order_key_header: str = "number"
    #: The store's IANA time zone, as ``GET /store/`` says.
    store_timezone: str = "UTC"
    #: Write every timestamp cell without an offset, as local time in ``store_timezone``.
    naive_timestamps: bool = False
    #: Whether the token may read ``GET /store/`` (scope store:read); else 403.
    store_read: bool = True
    #: Whether the token may read ``GET /metadata/`` (scope metadata:read); else 403.
    metadata_read: bool = True
    #: Webhook signature: over ``json.dumps(body)`` as sent ("reserialized", the guide's
    #: example) or over a compact body's raw bytes ("raw", as live deliveries verify).
    webhook_signing: str = "reserialized"
    #: With each export.created of the tap's export, also deliver one for an export made
    #: in the dashboard and an ``order.created`` (the subscription is store-wide).
    webhook_noise: bool = False
    #: Clover refuses a range of exactly 30 days too (the cap read strictly).
    clover_strict_range: bool = False


def validate_unpublished(cfg: UnpublishedFacts) -> None:
    """Reject a value the sandbox cannot honour, naming the setting."""
    if cfg.order_key_header not in ORDER_KEY_HEADERS:
        raise ValueError(f"order_key_header must be one of {', '.join(ORDER_KEY_HEADERS)}")
    if cfg.webhook_signing not in WEBHOOK_SIGNINGS:
        raise ValueError(f"webhook_signing must be one of {', '.join(WEBHOOK_SIGNINGS)}")
    try:
        ZoneInfo(cfg.store_timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(
            f"store_timezone must be an IANA time zone name, not {cfg.store_timezone!r}"
        ) from None


# --- files -----------------------------------------------------------------------


def reshaped(cfg: SandboxConfig, export_type: str) -> bool:
    """Whether ``export_type``'s files differ from the data's own shape under ``cfg``."""
    return (
        cfg.naive_timestamps
        or (not cfg.line_files_timed and export_type in UNTIMED_LINE_TYPES)
        or (export_type == "order_list" and cfg.order_key_header != "number")
    )


def file_rows(
    cfg: SandboxConfig, export_type: str, headers: list[str], rows: Iterator[list[str]]
) -> tuple[list[str], Iterator[str]]:
    """The headers and pre-escaped CSV lines of a file whose shape ``cfg`` changes."""
    from commerce_sandbox.csvgen import title_header
    from commerce_sandbox.data_nextcommerce import SPECS

    kinds = [c.kind for c in SPECS[export_type][0]]
    keep = [
        i
        for i, kind in enumerate(kinds)
        if not (kind == "window" and not cfg.line_files_timed and export_type in UNTIMED_LINE_TYPES)
    ]
    out_headers = [headers[i] for i in keep]
    if export_type == "order_list" and cfg.order_key_header != "number":
        key = kinds.index("key")
        titled = headers[key] != "number"
        name = cfg.order_key_header
        out_headers[keep.index(key)] = title_header(name) if titled else name
    local = [i for i in keep if kinds[i] in ("window", "ts")] if cfg.naive_timestamps else []
    zone = ZoneInfo(cfg.store_timezone)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        for row in rows:
            for i in local:
                if row[i]:
                    row[i] = naive_local(row[i], zone)
            writer.writerow([row[i] for i in keep])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return out_headers, lines()


def naive_local(text: str, zone: ZoneInfo) -> str:
    """An aware ISO timestamp as the store's local wall time, without an offset."""
    return datetime.fromisoformat(text).astimezone(zone).replace(tzinfo=None).isoformat()


# --- the store's own endpoints -----------------------------------------------------


def store_answer(cfg: SandboxConfig) -> tuple[int, Any]:
    """``GET /store/``: the store object (its ``timezone``), or 403 without the scope."""
    if not cfg.store_read:
        return 403, {"detail": "You do not have permission to perform this action."}
    return 200, {
        "name": cfg.store,
        "primary_domain": f"{cfg.store}.example.com",
        "timezone": cfg.store_timezone,
        "tagline": "",
        "tax_id": "",
    }


def metadata_answer(cfg: SandboxConfig) -> tuple[int, Any]:
    """``GET /metadata/``: the store's definitions (one page), or 403 without the scope."""
    if not cfg.metadata_read:
        return 403, {"detail": "You do not have permission to perform this action."}
    results = [
        {
            "id": n,
            "name": name,
            "key": key,
            "object": obj,
            "type": kind,
            "enable_export": True,
            "enable_filter": False,
        }
        for n, (name, key, obj, kind) in enumerate(METADATA_DEFINITIONS, start=1)
    ]
    return 200, {"next": None, "previous": None, "results": results}


# --- webhooks ---------------------------------------------------------------------


def noise_events(envelope: dict[str, Any], dashboard_export_id: int) -> list[dict[str, Any]]:
    """What else a store-wide subscription delivers besides the tap's own export: an
    export made in the dashboard, and an event of another type."""
    dashboard = dict(envelope, event_id=f"{envelope['event_id']}-dashboard")
    dashboard["data"] = dict(envelope["data"], id=dashboard_export_id)
    order = dict(envelope, event_id=f"{envelope['event_id']}-order", event_type="order.created")
    order["object"] = "order"
    order["data"] = {"number": "100001", "created_at": envelope["data"].get("created_at")}
    return [dashboard, order]
