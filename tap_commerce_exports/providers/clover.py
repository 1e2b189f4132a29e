"""Clover REST v3 Export API: only this platform's facts.

``POST /v3/merchants/{mId}/exports`` with epoch-millisecond ``startTime``/``endTime``
(at most 30 days); ``GET .../exports/{id}``: ``PENDING`` -> ``IN_PROGRESS``
(``percentComplete``) -> ``DONE`` (older docs: ``COMPLETE``), then ``exportUrls`` with
one JSON file per 1000 objects, on a file host that takes no token. 16 requests/s and 5
in flight per token; 503 when too many exports run, or outside the availability hours.
No endpoint lists a merchant's exports: a create whose answer was lost can't be found,
so creating again may leave two exports running (one is never downloaded).
Money: amounts are integer cents, as Clover sends them (``integer`` in its schemas; the
tap never rescales them; the rule: ``files/converters.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from tap_commerce_exports.config.declarations import Setting
from tap_commerce_exports.config.values import opt_str
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.files.json_reader import JsonElementsFileReader
from tap_commerce_exports.http.api_client import (
    AnswerLost,
    ApiClient,
    ApiError,
    response_json,
    retry_after_seconds,
    server_reason,
)
from tap_commerce_exports.http.ratelimit import RateLimiter
from tap_commerce_exports.providers.answers import export_id_of, percent_of, text_of, url_list_of
from tap_commerce_exports.providers.base import (
    AccountSection,
    Availability,
    CreateAnswerLost,
    CreateRefused,
    ExportGone,
    ExportPhase,
    ExportProvider,
    ExportsBusy,
    ExportStatus,
    ProviderFacts,
)
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.windows import Window

if TYPE_CHECKING:
    from tap_commerce_exports.config.account_settings import AccountSettings

#: Region -> API host (the contract's base URLs); a config without ``region`` means us.
DEFAULT_REGION = "us"
REGIONS = {
    "us": "https://api.clover.com",
    "eu": "https://api.eu.clover.com",
    "la": "https://api.la.clover.com",
    "sandbox": "https://apisandbox.dev.clover.com",
}

STATUS_PHASES = {
    "PENDING": ExportPhase.PENDING,
    "IN_PROGRESS": ExportPhase.RUNNING,
    "DONE": ExportPhase.DONE,
    "COMPLETE": ExportPhase.DONE,  # older documentation's name for DONE
}

# Published availability windows, UTC, per weekday (Mon=0 .. Sun=6): (start, end) hours.
AVAILABILITY_HOURS: dict[str, dict[int, tuple[int, int]] | None] = {
    "us": {day: (10, 15) for day in range(7)},
    "eu": {0: (1, 5), 1: (1, 5), 2: (1, 5), 3: (1, 5), 4: (1, 5), 5: (2, 5), 6: (2, 6)},
    "sandbox": None,  # unrestricted
    "la": None,  # not published: the tap can't know; a 503 is then retried with backoff
}


def _from_epoch_ms(value: object) -> datetime | None:
    """An instant from Clover's epoch milliseconds, None if it is not a sane one."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 253_402_300_800_000:
        return None
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def to_epoch_ms(moment: datetime) -> int:
    """Clover takes instants as epoch milliseconds, UTC."""
    return int(moment.astimezone(timezone.utc).timestamp() * 1000)


HoursTable = dict[int, tuple[int, int]]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_GROUPS = {"daily": range(7), "mon-fri": range(5), "sat-sun": range(5, 7)}


def parse_export_hours(value: object, setting: str = "export_hours") -> HoursTable | None:
    """The ``export_hours`` setting as the table :data:`AVAILABILITY_HOURS` holds.

    Why a setting: Clover has published other hours over time (08-12, 10-13, now 10-15
    UTC for the US); a change must not need a release. Shape: an object of day keys
    (``mon``..``sun``, ``mon-fri``, ``sat-sun``, ``daily``; later keys win) to
    ``[start_hour, end_hour]`` in UTC (0-24, start before end), or ``"always"`` for no
    restriction (None). Days not named are closed. One-line ConfigError on a mistake.
    """
    if isinstance(value, str) and value.strip().lower() == "always":
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"setting '{setting}' must be an object such as "
            '{"mon-fri": [10, 15], "sat-sun": [10, 15]} (UTC hours) or "always"'
        )
    table: HoursTable = {}
    for key, span in value.items():
        name = str(key).strip().lower()
        days = _DAY_GROUPS.get(name) or ((_DAYS.index(name),) if name in _DAYS else None)
        if days is None:
            raise ConfigError(f"setting '{setting}' has day '{key}': use mon..sun, mon-fri, sat-sun or daily")
        ok = isinstance(span, (list, tuple)) and len(span) == 2 and all(type(h) is int for h in span)
        if not ok or not 0 <= span[0] < span[1] <= 24:
            raise ConfigError(
                f"setting '{setting}': '{key}' must be [start_hour, end_hour] in UTC, "
                "whole hours from 0 to 24, start before end"
            )
        for day in days:
            table[day] = (span[0], span[1])
    return table


def availability_at(
    region: str, now: datetime, hours: HoursTable | None | Literal[False] = False
) -> Availability:
    """Whether ``region`` accepts exports at ``now``, and when it opens next if not.

    ``hours``: the ``export_hours`` setting's table (None: unrestricted), else (False)
    the region's published hours."""
    if hours is False:
        hours = AVAILABILITY_HOURS.get(region)
    if hours is None:
        return Availability(open=True)
    now = now.astimezone(timezone.utc)
    start_h, end_h = hours.get(now.weekday(), (0, 0))
    if start_h <= now.hour < end_h:
        return Availability(open=True)
    for offset in range(0, 8):
        day = (now + timedelta(days=offset)).date()
        if day.weekday() not in hours:
            continue
        s, _ = hours[day.weekday()]
        opens = datetime.combine(day, time(hour=s), tzinfo=timezone.utc)
        if opens > now:
            return Availability(
                open=False,
                opens_at=opens,
                description=f"Clover {region.upper()} exports run only {_describe(hours)} (UTC)",
            )
    return Availability(open=False)  # pragma: no cover - every week has an opening


def _describe(hours: HoursTable) -> str:
    spans = sorted({(s, e) for s, e in hours.values()})
    if len(spans) == 1 and len(hours) == 7:
        s, e = spans[0]
        return f"{s:02d}:00-{e:02d}:00 daily"
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    return ", ".join(f"{names[d]} {s:02d}-{e:02d}" for d, (s, e) in sorted(hours.items()))


class CloverProvider(ExportProvider):
    """Creates, polls and locates Clover JSON exports."""

    facts = ProviderFacts(
        name="clover",
        title="Clover",
        file_format="json",
        streams=CLOVER_STREAMS,
        default_window_days=30,
        max_window_days=30,
        default_max_concurrent_exports=1,  # the guide: wait for each export before the next
        requests_per_second=16.0,
        max_concurrent_requests=5,
        supports_webhook=False,
        app_requests_per_second=50.0,  # per app, across every merchant that installed it
        app_max_concurrent_requests=10,
        file_reader=JsonElementsFileReader,
        file_extension="json",
        window_value=to_epoch_ms,
        files_add_columns=False,
        token_description="Clover OAuth/merchant API token",
        api_url_example="`http://127.0.0.1:8000` (Clover)",
        concurrency_note=", as its guide asks",
    )
    settings_properties = (
        Setting("merchant_id", "string", "Merchant id", "Clover merchant id (mId)."),
        Setting(
            "region",
            "string",
            "Region",
            "Clover region: us, eu, la or sandbox (picks the API host and the availability hours).",
            default=DEFAULT_REGION,
            choices=tuple(sorted(REGIONS)),
        ),
        Setting(
            "outside_hours",
            "string",
            "Outside export hours",
            "Clover: outside the region's export hours, `wait` until they open (logging when) or "
            "`stop` at once saying when they open.",
            default="wait",
            choices=("wait", "stop"),
        ),
        Setting(
            "export_hours",
            "object",
            "Export hours",
            "Clover: the hours (UTC) exports may be created, overriding the region's published ones, "
            'e.g. `{{"mon-fri": [10, 15], "sat-sun": [10, 15]}}` (days `mon`..`sun`, `mon-fri`, '
            '`sat-sun`, `daily`; days not named are closed), or `"always"`. Unset: the region\'s.',
        ),
    )

    @classmethod
    def read_section(cls, config: Mapping[str, Any], *, require_credentials: bool) -> AccountSection:
        """The merchant and the region's host (or ``api_url``); the region defaults to us."""
        region = str(config.get("region") or DEFAULT_REGION).strip().lower()
        if region not in REGIONS:
            raise ConfigError(f"setting 'region' is '{region}': use one of us, eu, la, sandbox")
        merchant_id = opt_str(config, "merchant_id")
        if require_credentials and not merchant_id:
            raise ConfigError("setting 'merchant_id' is missing: set it to the Clover merchant id (mId)")
        api_url = (opt_str(config, "api_url") or REGIONS[region]).rstrip("/")
        hours = config.get("export_hours")
        if isinstance(hours, str) and hours.strip().startswith("{"):  # JSON text, from the environment
            try:
                hours = json.loads(hours)
            except ValueError:
                pass  # refused below, in the parser's words
        options = {} if hours in (None, "", {}) else {"export_hours": parse_export_hours(hours)}
        return AccountSection(
            api_url=api_url,
            store=opt_str(config, "store"),
            merchant_id=merchant_id,
            region=region,
            options=options,
        )

    account_keys = ("merchant_id", "access_token", "sandbox_token", "region", "api_url")

    def __init__(self, settings: AccountSettings, *, app_limiter: RateLimiter | None = None) -> None:
        super().__init__(settings, app_limiter=app_limiter)
        name = settings.setting_name
        self.api = ApiClient(
            settings.api_url.rstrip("/") + "/",
            {"Authorization": f"Bearer {settings.access_token}"},
            self.limiter(settings.max_requests_per_second, self.facts.max_concurrent_requests),
            auth_hint=f"check '{name('access_token')}' (an OAuth or merchant API token with "
            f"export permission) and '{name('merchant_id')}'",
        )
        self._base = f"v3/merchants/{quote(settings.merchant_id or '', safe='')}/exports"
        #: The ``export_hours`` setting's table (None: unrestricted); False: the region's.
        self.export_hours: HoursTable | None | Literal[False] = settings.provider_options.get(
            "export_hours", False
        )

    @classmethod
    def account_of(cls, settings: AccountSettings) -> str:
        return settings.merchant_id or "default"

    def _not_found(self) -> ConfigError:
        name = self.settings.setting_name
        return ConfigError(
            f"Clover merchant '{self.account}' was not found at {self.settings.api_url}: "
            f"check '{name('merchant_id')}' and '{name('region')}'"
        )

    def check_access(self) -> str:
        try:
            self.api.get_json(f"v3/merchants/{quote(self.settings.merchant_id or '', safe='')}")
        except ApiError as exc:
            if exc.status == 404:
                raise self._not_found() from None
            raise
        return f"Clover merchant '{self.account}' ({self.settings.region}): access OK"

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        # Boundary rule: see windows.py. endTime is the exact window end.
        body = {
            "type": export_type,
            "startTime": to_epoch_ms(window.start),
            "endTime": to_epoch_ms(window.end),
        }
        try:
            response = self.api.post_json(self._base, body, passthrough=(400, 503), idempotent=False)
        except AnswerLost as lost:
            raise CreateAnswerLost(str(lost)) from None
        except ApiError as exc:
            if exc.status == 404:
                raise self._not_found() from None
            raise
        if response.status_code == 400:
            # e.g. a range its 30-day cap refuses (is exactly 30 days "at most 30"?)
            raise CreateRefused(server_reason(response))
        if response.status_code == 503:
            # what a 503 says is not published: read the reason from whatever shape it has
            raise ExportsBusy(
                retry_after_seconds(response.headers.get("retry-after"), default=0) or None,
                server_reason(response),
            )
        return self._status(response_json(response))

    def get_export(self, export_id: str) -> ExportStatus:
        try:
            return self._status(self.api.get_json(f"{self._base}/{quote(export_id, safe='')}"))
        except ApiError as exc:
            if exc.status == 404:
                raise ExportGone(export_id) from None
            raise

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        if refresh or status.file_urls is None:
            status = self.get_export(status.export_id)
        return list(status.file_urls or ())

    def availability(self, now: datetime) -> Availability:
        return availability_at(self.settings.region, now, self.export_hours)

    def close(self) -> None:
        self.api.close()

    @staticmethod
    def _status(body: object) -> ExportStatus:
        if not isinstance(body, dict) or "id" not in body:
            raise ApiError("the Clover API answered without an export object: check 'api_url'")
        export_id = export_id_of(body)
        what = f"Clover export {export_id}"
        raw = text_of(body, "status", what)
        phase = STATUS_PHASES.get(raw.upper(), ExportPhase.FAILED)
        urls = url_list_of(body, "exportUrls", what) if phase is ExportPhase.DONE else None
        start, end = _from_epoch_ms(body.get("startTime")), _from_epoch_ms(body.get("endTime"))
        return ExportStatus(
            export_id=export_id,
            phase=phase,
            raw_status=raw,
            percent_complete=percent_of(body, "percentComplete", what),
            file_urls=urls,
            export_type=text_of(body, "type", what) or None,
            window=(start, end) if start is not None and end is not None else None,
        )
