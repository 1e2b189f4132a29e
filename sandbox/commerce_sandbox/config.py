"""The sandbox's settings: one dataclass, changeable at runtime.

Every knob the demo, the tests, the benchmark and the fault-matrix script need is a
field of :class:`SandboxConfig`, so that the same names work in three places: the
Python constructor, ``POST /_sandbox/control`` (JSON) and the command line
(``--kebab-case``). Fault switches live here too: a counting fault (``fault_500: 3``)
is decremented as it fires, so reading the config back shows how many are left.

Every fact the API contract (``shared/api/CONTRACT.md``) calls unpublished or uncertain
has a setting that varies it, so the end-to-end tests can run the tap across its values
(``tests/test_e2e_sandbox_unpublished.py`` and the suites named):

=========================================================  ================================
Unpublished or uncertain fact                              Setting(s) that vary it
=========================================================  ================================
NC: is ``date_to`` inclusive? (and Clover's ``endTime``)   ``date_to_inclusive``
NC: the status word of a failed export (none published)    ``nc_failed_status``
NC: an export may stay ``pending`` forever                 ``fault_never_ready``
NC: file column names, header style                        ``header_style``,
                                                           ``window_column_names``
NC: metadata columns a store adds                          always some (``METADATA_COLUMNS``)
NC: the UTC offsets of timestamp cells                     ``utc_offsets``
NC: signed URL lifetime; its expiry answer (403/404/410)   ``url_ttl``, ``fault_expired_url``,
                                                           ``file_expired_status``
NC: the time zone of the list filters' YYYY-MM-DD days     ``nc_list_day_offset``
NC: how a webhook names its store                          ``webhook_store_form``
NC: the largest range one export may cover                 ``fault_fail_above_days``
Clover: the status word of a failed export                 ``clover_failed_status``
Clover: ``COMPLETE`` (old docs) instead of ``DONE``        ``clover_legacy_complete``
Clover: how many exports run at once ("a few"), and         ``clover_max_running`` (per
  whether per merchant or for the whole app                  merchant), ``clover_app_max_running``
Clover: the 503's body, a ``retry-after`` on it            ``clover_503_body``,
                                                           ``clover_503_retry_after``
Clover: Latin America's export hours                       ``clover_hours`` (any window)
Clover: how much an early retry lengthens the wait         not varied (doubles: CloverPenalty)
Files' and deliveries' shapes (line timestamps, key header,  ``UnpublishedFacts``
naive times, raw-body signing, the 30-day cap read strictly)  (``unpublished.py``)
=========================================================  ================================
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union, get_args, get_origin, get_type_hints

from commerce_sandbox.accounts import expand, resolve
from commerce_sandbox.unpublished import UnpublishedFacts, validate_unpublished

#: Next Commerce export types, in the order the types endpoint lists them, with the
#: human name the provider's guide gives each.
NC_TYPES: dict[str, str] = {
    "order_list": "Orders",
    "order_line_items": "Order Line Items",
    "customer_list": "Customers",
    "transaction_list": "Transactions",
    "dispute_list": "Disputes",
    "subscription_list": "Subscriptions",
    "subscription_line_items": "Subscription Line Items",
    "open_cart_list": "Open Carts",
    "open_cart_line_items": "Open Cart Line Items",
    "return_list": "Returns",
    "return_line_items": "Return Line Items",
    "fulfillment_list": "Fulfillments",
    "fulfillment_line_items": "Fulfillment Line Items",
}

CLOVER_TYPES: tuple[str, ...] = ("ORDERS", "PAYMENTS")

#: Shapes a Clover 503 body may take (``clover_503_body``).
CLOVER_503_BODIES: tuple[str, ...] = ("message", "error", "text", "empty")

#: Default objects per UTC day. Line-item types are not listed: their rows are derived
#: from their parents (1-3 lines per parent), so that every line points at a real parent
#: and carries the parent's timestamp.
DEFAULT_ROWS_PER_DAY: dict[str, int] = {
    "order_list": 25,
    "customer_list": 20,
    "transaction_list": 35,
    "dispute_list": 6,
    "subscription_list": 10,
    "open_cart_list": 12,
    "return_list": 5,
    "fulfillment_list": 20,
    "ORDERS": 45,
    "PAYMENTS": 50,
}

#: Which header style each NC type uses when ``header_style == "mixed"``. Real stores
#: show both; the tap must normalize either.
MIXED_HEADER_STYLE: dict[str, str] = {
    "order_list": "title",
    "order_line_items": "title",
    "customer_list": "title",
    "transaction_list": "snake",
    "dispute_list": "title",
    "subscription_list": "snake",
    "subscription_line_items": "title",
    "open_cart_list": "snake",
    "open_cart_line_items": "title",
    "return_list": "snake",
    "return_line_items": "snake",
    "fulfillment_list": "title",
    "fulfillment_line_items": "snake",
}

#: Fields fixed once the server is bound.
IMMUTABLE_FIELDS = frozenset({"host", "port"})


@dataclass
class SandboxConfig(UnpublishedFacts):
    """All settings of the sandbox. Every field has a default.

    Times are ISO-8601 strings (any offset); durations are seconds. The settings of the
    files' and deliveries' unpublished facts are :class:`UnpublishedFacts`'s (its own
    module, ``unpublished.py``, says what each varies).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 42
    token: str = "sandbox-token"
    store: str = "demo-store"
    merchant_id: str = "SANDBOXMERCHANT1"
    #: More stores and merchants besides the default ones above (``sandbox.accounts``):
    #: ``[{"store": S, "token": T}, {"merchant_id": M, "token": T}, ...]``, or the count
    #: form ``{"stores": 3, "merchants": 2}`` (``store-1..3`` / ``MERCHANT1..2``, tokens
    #: ``token-<name>``). Store S is served at ``/stores/S/api/admin/``.
    accounts: list[dict[str, str]] | None = None
    #: Rows exist only with window instant in [data_start, data_end). Raising data_end
    #: adds rows after the old end and changes nothing before it.
    data_start: str = "2025-01-01T00:00:00Z"
    data_end: str = "2025-03-01T00:00:00Z"
    #: Objects per UTC day: a dict per export type (missing types keep their default),
    #: or one int for every parent type. Line-item types derive from their parents.
    rows_per_day: dict[str, int] | int | None = None
    #: Seconds from creation until an export is ready (monotonic clock).
    processing_delay: float = 2.0
    #: Next Commerce requests per second per token; <= 0 disables the limit.
    nc_rate_limit: float = 4.0
    #: Seconds announced in Retry-After / retry-after.
    retry_after: int = 1
    #: Whether a row whose instant equals date_to (NC) / endTime (Clover) is exported.
    date_to_inclusive: bool = True
    #: "snake" | "title" | "mixed" (see MIXED_HEADER_STYLE).
    header_style: str = "mixed"
    #: Next Commerce column names are not published, the creation-time (window) column's
    #: included: {export_type: snake_case name} renames that column in the type's files
    #: (and in the ground truth), e.g. {"order_list": "date_created"}. Unlisted types
    #: keep the name in ``data_nextcommerce.SPECS``.
    window_column_names: dict[str, str] | None = None
    #: UTC offsets timestamp cells are written in, one picked per cell: minutes east of
    #: UTC, or "Z" for the letter. None: the default mix (``datagen.OFFSETS``).
    utc_offsets: list[int | str] | None = None
    #: Lifetime of signed file URLs, seconds.
    url_ttl: float = 60.0
    # --- capacity: how much the server takes (unpublished, except the app limits) ---
    #: Clover exports running at once per merchant ("a few"); past it a create is a 503.
    clover_max_running: int = 2
    #: Clover exports running at once for the whole app, across every merchant (0: no
    #: such cap). Whether "a few" is per merchant or per app is not published: set this
    #: and raise ``clover_max_running`` to emulate a server whose capacity is shared.
    clover_app_max_running: int = 0
    #: Clover requests per second per token; <= 0 disables the limit.
    clover_rate_limit: float = 16.0
    clover_max_concurrent_requests: int = 5
    #: App-wide Clover limits, across every merchant's token (<= 0 disables each).
    clover_app_rate_limit: float = 50.0
    clover_app_max_concurrent_requests: int = 10
    #: Seconds every Clover API request takes (0 = instant). Lets tests and the
    #: benchmark make the concurrency limit observable.
    clover_request_delay: float = 0.0
    #: "off" | "us" | "eu": availability windows for creating Clover exports.
    clover_hours: str = "off"
    #: What a Clover 503 on create says (not published): "message" ``{"message": R}``,
    #: "error" ``{"error": {"code": 503, "message": R}}``, "text" (R as text/plain) or
    #: "empty" (no body); R is the refusal's reason (hours, running exports, fault).
    clover_503_body: str = "message"
    #: Seconds announced in a ``retry-after`` header on a Clover 503; 0 sends none.
    clover_503_retry_after: int = 0
    #: Shifts the sandbox's wall clock (URL expiry, Clover hours, created_at), seconds.
    clock_offset: float = 0.0
    #: Freezes the sandbox's wall clock at this ISO instant (overrides clock_offset).
    fake_now: str | None = None
    clover_legacy_complete: bool = False
    clover_objects_per_file: int = 1000
    webhook_url: str | None = None
    webhook_secret: str | None = None
    #: How a webhook names its store (not published): "subdomain" (``demo-store``) or
    #: "host" (``demo-store.29next.store``).
    webhook_store_form: str = "subdomain"
    #: Minutes east of UTC of the day a list filter's ``YYYY-MM-DD`` means
    #: (``date_created_from``/``_to``; not published: UTC, or the store's time zone).
    nc_list_day_offset: int = 0
    #: The status a failed Next Commerce export shows (none is published).
    nc_failed_status: str = "failed"
    #: The status a failed Clover export shows ("anything else is a failed export").
    clover_failed_status: str = "FAILED"
    #: What the file host answers for an expired signed URL (403, 404 or 410: the
    #: contract says "typically" any of them).
    file_expired_status: int = 403
    #: Benchmark knob: {export_type: N} makes that type hold exactly N rows spread
    #: evenly over [data_start, data_end) (overrides rows_per_day for it; for a
    #: line-item type, its parent is sized so the lines total about N).
    large_file_rows: dict[str, int] | None = None
    # --- faults (deterministic; each firing is counted in stats) ---
    fault_429_burst: int = 0
    fault_500: int = 0
    fault_expired_url: bool = False
    fault_truncated_download: bool = False
    #: Every file download sends its headers and half its body, then holds the connection
    #: open while this stays on (counted as ``downloads_held`` once the half is sent): a
    #: test knows a download is in flight, whatever the machine's speed.
    fault_hold_download: bool = False
    fault_export_failed: int = 0
    #: The next N creates make their export, then answer 502 (the answer is "lost").
    fault_create_answer_lost: int = 0
    #: Exports over more than this many days end failed (0: off); smaller ones succeed,
    #: as on a store whose exports fail above some unpublished size.
    fault_fail_above_days: float = 0.0
    fault_never_ready: bool = False
    fault_clover_503: int = 0
    #: One of ``sandbox.bad_files.KINDS``: the next export file served is a damaged copy.
    fault_bad_file: str | None = None
    #: When set (a store or merchant name), faults fire only on that account's
    #: requests, exports and files; None: on any account's.
    fault_account: str | None = None

    def __post_init__(self) -> None:
        self.accounts = expand(self.accounts)
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy of every field."""
        return dataclasses.asdict(self)

    def rows_for(self, export_type: str) -> int:
        """Base objects per day for a parent type (before day-to-day variation)."""
        rpd = self.rows_per_day
        if isinstance(rpd, int):
            return rpd
        if isinstance(rpd, dict) and export_type in rpd:
            return int(rpd[export_type])
        return DEFAULT_ROWS_PER_DAY.get(export_type, 10)

    def header_style_for(self, export_type: str) -> str:
        """``snake`` or ``title`` for one NC type under the current header_style."""
        if self.header_style == "mixed":
            return MIXED_HEADER_STYLE[export_type]
        return self.header_style


def parse_instant(value: str) -> datetime:
    """ISO-8601 with any offset (``Z`` too) to an aware UTC datetime; naive means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def validate(cfg: SandboxConfig) -> None:
    """Reject settings the sandbox cannot honour, with a message naming the field."""
    validate_unpublished(cfg)
    if cfg.header_style not in ("snake", "title", "mixed"):
        raise ValueError("header_style must be snake, title or mixed")
    if cfg.clover_hours not in ("off", "us", "eu"):
        raise ValueError("clover_hours must be off, us or eu")
    if cfg.clover_503_body not in CLOVER_503_BODIES:
        raise ValueError(f"clover_503_body must be one of {', '.join(CLOVER_503_BODIES)}")
    if not -1440 < cfg.nc_list_day_offset < 1440:
        raise ValueError("nc_list_day_offset must be minutes in -1439..1439")
    if cfg.nc_failed_status in ("pending", "available") or not cfg.nc_failed_status:
        raise ValueError("nc_failed_status must be a word other than pending and available")
    if (
        cfg.clover_failed_status in ("PENDING", "IN_PROGRESS", "DONE", "COMPLETE")
        or not cfg.clover_failed_status
    ):
        raise ValueError(
            "clover_failed_status must be a word other than PENDING, IN_PROGRESS, DONE, COMPLETE"
        )
    if cfg.file_expired_status not in (403, 404, 410):
        raise ValueError("file_expired_status must be 403, 404 or 410")
    if cfg.clover_max_running < 0 or cfg.clover_app_max_running < 0:
        raise ValueError("clover_max_running and clover_app_max_running must be >= 0")
    if cfg.clover_503_retry_after < 0:
        raise ValueError("clover_503_retry_after must be >= 0")
    start, end = parse_instant(cfg.data_start), parse_instant(cfg.data_end)
    if end <= start:
        raise ValueError("data_end must be after data_start")
    if cfg.fake_now is not None:
        parse_instant(cfg.fake_now)
    from commerce_sandbox.bad_files import validate_kind

    validate_kind(cfg.fault_bad_file)
    if cfg.clover_objects_per_file < 1:
        raise ValueError("clover_objects_per_file must be >= 1")
    if cfg.fault_fail_above_days < 0:
        raise ValueError("fault_fail_above_days must be >= 0")
    if cfg.processing_delay < 0:
        raise ValueError("processing_delay must be >= 0")
    for export_type, column in (cfg.window_column_names or {}).items():
        if export_type not in NC_TYPES:
            raise ValueError(f"window_column_names: unknown Next Commerce export type {export_type!r}")
        if not _SNAKE.fullmatch(str(column)):
            raise ValueError(f"window_column_names: {export_type} needs a snake_case name, not {column!r}")
    if cfg.utc_offsets is not None:
        if not cfg.utc_offsets:
            raise ValueError("utc_offsets must list at least one offset")
        for offset in cfg.utc_offsets:
            if offset != "Z" and not (isinstance(offset, int) and -1440 < offset < 1440):
                raise ValueError(f"utc_offsets: {offset!r} is not 'Z' or minutes in -1439..1439")
    resolve(cfg)
    for name in ("rows_per_day", "large_file_rows"):
        value = getattr(cfg, name)
        if isinstance(value, dict):
            for key, n in value.items():
                if key not in NC_TYPES and key not in CLOVER_TYPES:
                    raise ValueError(f"{name}: unknown export type {key!r}")
                if int(n) < 0:
                    raise ValueError(f"{name}: {key} must be >= 0")


_SNAKE = re.compile(r"[a-z][a-z0-9_]*")


def _parse_names(value: Any) -> dict[str, str]:
    """``{"order_list": "date_created"}`` or ``"order_list=date_created,..."``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json.loads(text)
        else:
            value = dict(part.split("=", 1) for part in text.split(",") if part.strip())
    if not isinstance(value, dict):
        raise ValueError("window_column_names must map export types to column names")
    return {str(k).strip(): str(v).strip() for k, v in value.items()}


def _parse_offsets(value: Any) -> list[int | str]:
    """``[-210, 0, "Z"]`` or ``"-210,0,Z"``."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(value, list):
        raise ValueError("utc_offsets must be a list of minutes (or 'Z')")
    out: list[int | str] = []
    for item in value:
        text = str(item).strip()
        out.append("Z" if text.upper() == "Z" else int(text))
    return out


def _field_types() -> dict[str, Any]:
    return get_type_hints(SandboxConfig)


def _parse_type_map(text: str) -> dict[str, int] | int:
    """``"30"`` -> 30; ``"order_list=30,ORDERS=50"`` or JSON object -> dict."""
    text = text.strip()
    if text.startswith("{"):
        return {str(k): int(v) for k, v in json.loads(text).items()}
    if "=" not in text:
        return int(text)
    out: dict[str, int] = {}
    for part in text.split(","):
        key, _, num = part.partition("=")
        out[key.strip()] = int(num)
    return out


def coerce(name: str, value: Any) -> Any:
    """Turn a JSON or command-line value into the field's Python type."""
    hint = _field_types()[name]
    if value is None:
        if type(None) in get_args(hint):
            return None
        raise ValueError(f"{name} cannot be null")
    if name == "accounts":
        return expand(value)
    if name == "window_column_names":
        return _parse_names(value)
    if name == "utc_offsets":
        return _parse_offsets(value)
    if name in ("rows_per_day", "large_file_rows"):
        if isinstance(value, str):
            value = _parse_type_map(value)
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items()}
        if name == "large_file_rows":
            raise ValueError("large_file_rows must map export types to row counts")
        return int(value)
    base = hint
    if get_origin(hint) is Union:
        base = next(a for a in get_args(hint) if a is not type(None))
    if base is bool:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} must be a boolean")
        return bool(value)
    if base is int:
        if isinstance(value, bool):
            return int(value)
        return int(value)
    if base is float:
        return float(value)
    return str(value)


def apply_changes(cfg: SandboxConfig, changes: dict[str, Any]) -> SandboxConfig:
    """A new config with ``changes`` applied and validated (the old one is untouched)."""
    names = {f.name for f in dataclasses.fields(SandboxConfig)}
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in names:
            raise ValueError(f"unknown sandbox setting: {key}")
        if key in IMMUTABLE_FIELDS and value != getattr(cfg, key):
            raise ValueError(f"{key} cannot change while the server runs")
        updates[key] = coerce(key, value)
    return dataclasses.replace(cfg, **updates)
