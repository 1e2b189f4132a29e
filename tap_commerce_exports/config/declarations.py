"""Every setting of the tap, declared ONCE: name, type, default, bounds, words for people.

Why one table: a default written in the JSON schema and again in the parser drifts (one
setting had six copies). The JSON schema (``--about``, Meltano's discovery), the parser's
defaults and bounds (``config/run_settings.py``), and the checks of ``meltano.yml``'s
settings and the README's table all read these declarations. A provider declares the
settings only it reads the same way (``ExportProvider.settings_properties``).

A description may name facts of the providers (``{token_description}``, ...): the schema
fills them in from the providers' facts (``settings.py``), so no provider is named here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from singer_sdk import typing as th

from tap_commerce_exports.http.download import DEFAULT_MAX_RATIO

#: A century: beyond it, dates overflow and nothing sensible is meant.
MAX_DAYS = 36500
MAX_SECONDS = 30 * 86400.0
#: Days every run re-reads before its bookmark. Windows are chosen by creation time, so
#: an order's later changes (payment capture, fulfilment, most refunds: days, not weeks)
#: reach the warehouse only through a re-read. Measured with scripts/lookback_cost.py:
#: daily runs create the same exports whatever the lookback (one per stream while
#: lookback + the run interval fit in one window) and read about (1 + lookback) days of
#: rows; 7 days caught every sandbox order's last change, 3 days 70 %, 0 days 10 %.
DEFAULT_LOOKBACK_DAYS = 7

Kind = Literal["string", "number", "integer", "date-time", "object", "string-map", "array"]
_TYPES: Mapping[Kind, Any] = {
    "string": th.StringType,
    "number": th.NumberType,
    "integer": th.IntegerType,
    "date-time": th.DateTimeType,
    "object": th.ObjectType(additional_properties=True),
    "string-map": th.ObjectType(additional_properties=th.StringType),
    "array": th.ArrayType(th.ObjectType(additional_properties=True)),
}


@dataclass(frozen=True)
class Setting:
    """One setting. ``default`` None: unset means "not given" (or the provider's default,
    which the description then names); ``minimum``/``maximum``: what the parser accepts."""

    name: str
    kind: Kind
    label: str
    description: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    required: bool = False

    def to_property(self, notes: Mapping[str, str] | None = None) -> th.Property[Any]:
        """The JSON schema property, its description's ``{note}``s filled from ``notes``."""
        return th.Property(
            self.name,
            _TYPES[self.kind],
            required=self.required,
            default=self.default,
            allowed_values=list(self.choices) or None,
            secret=self.secret,
            description=self.description.format(**(notes or {})),
        )


#: The settings every provider reads, in the order they are listed (``--about``, Meltano);
#: each provider's own settings take their place in :data:`ORDER`.
SHARED: tuple[Setting, ...] = (
    Setting(
        "provider",
        "string",
        "Provider",
        "Which platform to read: {providers}.",
        # default and choices: the providers' registry's (settings.py fills them in)
    ),
    Setting(
        "accounts",
        "array",
        "Accounts",
        "Several accounts in one run: a list of objects, one per account, with that "
        "account's own keys ({account_keys_note}); a key an object "
        "leaves out is the top-level setting's. Unset: one account, the top-level settings.",
        secret=True,
    ),
    Setting(
        "accounts_file",
        "string",
        "Accounts file",
        "Path of a file of accounts (objects as in `accounts`): a JSON list, or one JSON "
        "object per line. Refused unless it is a file (not a link) of the tap's user that only it can read (chmod 600). Adds to `accounts`.",
    ),
    Setting("access_token", "string", "Access token", "API token: {token_description}.", secret=True),
    Setting(
        "sandbox_token",
        "string",
        "Sandbox token",
        "Token of a local API emulator (the bundled sandbox) on a loopback api_url. When set, it is "
        "sent instead of access_token, so a real token from the environment or .env never reaches "
        "the emulator; refused unless api_url is on this machine.",
    ),
    Setting(
        "api_url",
        "string",
        "API base URL",
        "Base-URL override, e.g. {api_url_example}. Must be https unless on loopback.",
    ),
    Setting(
        "start_date",
        "date-time",
        "Start date",
        "Earliest instant to export (ISO-8601 date or date-time; UTC if no offset).",
        required=True,
    ),
    Setting("end_date", "date-time", "End date", "Export up to this instant (exclusive). Default: now."),
    Setting(
        "window_days",
        "number",
        "Window (days)",
        "Days covered by one export. Default 30{max_window_note}.",
        minimum=1 / 24,
        maximum=MAX_DAYS,
    ),
    Setting(
        "lookback",
        "number",
        "Lookback (days)",
        "Days before the saved bookmark at which the next run starts again, to catch changes made "
        "to rows after their window was read (those rows are emitted again, by design). 0 reads "
        "each window once.",
        default=DEFAULT_LOOKBACK_DAYS,
        minimum=0,
        maximum=MAX_DAYS,
    ),
    Setting(
        "window_columns",
        "string-map",
        "Window columns",
        "Per stream, the file column that holds each row's creation time, when the tap does not "
        'find it by itself, e.g. `{{"orders": "Placed On"}}` (header text or its snake_case form).',
    ),
    Setting(
        "key_columns",
        "string-map",
        "Key columns",
        "Per stream, the file column that holds each row's key, when the tap does not find it by "
        'itself, e.g. `{{"orders": "Order Ref"}}` (header text or its snake_case form). The tap '
        "looks for the API's own key and its usual other names (`number` or `Order Number` for "
        "orders, `id` or `line_id` for line items, ...).",
    ),
    Setting(
        "file_timezone",
        "string",
        "File time zone",
        "IANA time zone (`America/New_York`) of the files' timestamps written without an offset, "
        "when the store's own zone cannot be read (it is, with the `store:read` scope). Unset and "
        "unknown: UTC, with a warning once per stream.",
    ),
    Setting(
        "poll_interval",
        "number",
        "Poll interval (s)",
        "Seconds before the first status check of a pending export; later checks wait a fifth of "
        "the time waited so far.",
        default=5,
        minimum=0.001,
        maximum=MAX_SECONDS,
    ),
    Setting(
        "poll_max_interval",
        "number",
        "Longest poll interval (s)",
        "Longest wait in seconds between two status checks.",
        default=120,
        minimum=0.001,
        maximum=MAX_SECONDS,
    ),
    Setting(
        "export_timeout",
        "number",
        "Export timeout (s)",
        "Seconds after which an export that is not ready is given up (the stream stops with a "
        "clear error; its bookmark stays).",
        default=10800,
        minimum=0.001,
        maximum=MAX_SECONDS,
    ),
    Setting(
        "export_attempts",
        "integer",
        "Export attempts",
        "Exports of one window that may end failed before the window is split in two (or, at "
        "'min_window_days', its stream stops).",
        default=3,
        minimum=1,
        maximum=100,
    ),
    Setting(
        "min_window_days",
        "number",
        "Smallest window (days)",
        "Smallest span in days a window that keeps failing is split down to (halves of at least this).",
        default=1,
        minimum=1 / 24,
        maximum=MAX_DAYS,
    ),
    Setting(
        "max_concurrent_exports",
        "integer",
        "Exports at once (per account)",
        "Exports in flight at once across all streams. Default: {max_concurrent_defaults}.",
        minimum=1,
        maximum=100,
    ),
    Setting(
        "max_concurrent_exports_total",
        "integer",
        "Exports at once (all accounts)",
        "Exports in flight at once across all accounts (max_concurrent_exports holds per "
        "account). Default: no cap beyond each account's.",
        minimum=1,
        maximum=10000,
    ),
    Setting(
        "max_requests_per_second",
        "number",
        "Requests per second (per account)",
        "Client-side API rate limit, per account (token). Default: the provider's published "
        "limit ({rps_defaults}).",
        minimum=0.01,
    ),
    Setting(
        "app_max_requests_per_second",
        "number",
        "Requests per second (app)",
        "API rate limit of the app across all accounts of a run. Default: the provider's "
        "published app limit ({app_rps_defaults}).",
        minimum=0.01,
    ),
    Setting(
        "app_max_concurrent_requests",
        "integer",
        "Requests at once (app)",
        "API requests in flight at once for the app across all accounts of a run. Default: "
        "{app_in_flight_defaults}.",
        minimum=1,
        maximum=10000,
    ),
    Setting(
        "on_invalid_record",
        "string",
        "On an invalid record",
        "A record that does not fit its schema: `fail` the stream with one line naming it, or "
        "`log` it to a rejects file and go on.",
        default="fail",
        choices=("fail", "log"),
    ),
    Setting(
        "rejects_dir",
        "string",
        "Rejects folder",
        "Folder for rejects files when on_invalid_record is `log`.",
        default="tap-commerce-exports-rejects",
    ),
    Setting(
        "max_download_file_mb",
        "integer",
        "Largest file (MiB)",
        "Largest export file to download, in MiB (after any Content-Encoding is undone); a larger "
        "one stops its stream with a clear error.",
        default=20480,
        minimum=1,
        maximum=1 << 30,
    ),
    Setting(
        "max_download_export_mb",
        "integer",
        "Largest export (MiB)",
        "Largest total of one export's files, in MiB.",
        default=102400,
        minimum=1,
        maximum=1 << 30,
    ),
    Setting(
        "max_decompression_ratio",
        "integer",
        "Largest decompression ratio",
        "Most bytes a file may inflate to per byte received when the file host compresses it (a "
        "guard against compression bombs; CSV and JSON compress 5-20x).",
        default=DEFAULT_MAX_RATIO,
        minimum=1,
        maximum=1_000_000,
    ),
    Setting(
        "download_timeout",
        "integer",
        "Download timeout (s)",
        "Seconds within which all files of one export must have downloaded, retries included "
        "(cuts off a host that sends a trickle).",
        default=7200,
        minimum=1,
        maximum=int(MAX_SECONDS),
    ),
)

#: The order settings are listed in; a provider's own settings take their place here.
ORDER = (
    "provider",
    "accounts",
    "accounts_file",
    "access_token",
    "store",
    "merchant_id",
    "region",
    "sandbox_token",
    "api_url",
    "api_version",
    "start_date",
    "end_date",
    "window_days",
    "lookback",
    "window_columns",
    "key_columns",
    "file_timezone",
    "poll_interval",
    "poll_max_interval",
    "export_timeout",
    "export_attempts",
    "min_window_days",
    "max_concurrent_exports",
    "max_concurrent_exports_total",
    "max_requests_per_second",
    "app_max_requests_per_second",
    "app_max_concurrent_requests",
    "outside_hours",
    "on_invalid_record",
    "rejects_dir",
    "max_download_file_mb",
    "max_download_export_mb",
    "max_decompression_ratio",
    "download_timeout",
    "webhook_listen",
    "webhook_secret",
)


def declared(sections: Iterable[Iterable[Setting]]) -> dict[str, Setting]:
    """Every setting by name, in :data:`ORDER`: the shared ones, then each provider's own
    (``sections``); a name declared twice keeps its first declaration."""
    table: dict[str, Setting] = {s.name: s for s in SHARED}
    for section in sections:
        for setting in section:
            table.setdefault(setting.name, setting)
    ordered = {n: table[n] for n in ORDER if n in table}
    return {**ordered, **{n: s for n, s in table.items() if n not in ordered}}
