"""Next Commerce (formerly 29 Next) Admin API exports: only this platform's facts.

Endpoints (relative to ``https://{store}.29next.store/api/admin/``): ``POST exports/``,
``GET exports/{id}/``, ``GET exports/{id}/download/`` -> ``{"url": signed CSV URL}``,
``GET exports/types/``. Bearer token + ``X-29Next-API-Version``. 4 requests/s per token.
Statuses: ``pending`` and ``available`` are documented; anything else is a failure.
``GET exports/`` lists exports newest first, filtered by ``type`` and creation day
(``date_created_from``, YYYY-MM-DD), with absolute ``next`` links: how a create whose
answer was lost is found (same type, same ``date_from`` and ``date_to``).
Money: CSV cells in decimal notation, read as exact ``Decimal`` (``number`` in its schemas;
the rule: ``files/converters.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_commerce_exports.config.declarations import Setting
from tap_commerce_exports.config.values import opt_str
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.files.csv_reader import CsvFileReader
from tap_commerce_exports.files.headers import normalize_header
from tap_commerce_exports.http.api_client import AnswerLost, ApiClient, ApiError, response_json
from tap_commerce_exports.http.ratelimit import RateLimiter
from tap_commerce_exports.providers.answers import export_id_of, text_of, url_of
from tap_commerce_exports.providers.base import (
    AccountSection,
    CreateAnswerLost,
    ExportGone,
    ExportPhase,
    ExportProvider,
    ExportStatus,
    FoundExport,
    ProviderFacts,
    StoreFacts,
    same_instant,
)
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tap_commerce_exports.windows import Window, iso_z

if TYPE_CHECKING:
    from tap_commerce_exports.config.account_settings import AccountSettings

STATUS_PHASES = {"pending": ExportPhase.PENDING, "available": ExportPhase.DONE}
#: A metadata definition's ``type`` -> the JSON schema of its export column (the others,
#: text, rich_text, multi_text and file, stay text).
METADATA_TYPES: dict[str, dict[str, Any]] = {
    "integer": {"type": ["integer", "null"]},
    "decimal": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
}
#: A metadata definition's ``object`` -> the streams whose files carry its column.
METADATA_STREAMS: dict[str, tuple[str, ...]] = {
    "order": ("orders",),
    "attribution": ("orders", "subscriptions", "open_carts"),
    "customer": ("customers",),
    "dispute": ("disputes",),
    "line": ("order_line_items", "subscription_line_items", "open_cart_line_items"),
}
#: Scope-less answers: the token may not read this (the facts then stay unknown).
_REFUSED = (401, 403, 404)
#: Pages of ``GET exports/`` read when looking for a lost create (20 exports a page).
MAX_LIST_PAGES = 10


def _is_subdomain(value: str) -> bool:
    return all(ch.isalnum() or ch == "-" for ch in value) and not value.startswith("-")


def _instant(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def found_export(body: object, export_type: str) -> tuple[datetime, datetime, datetime | None] | None:
    """(date_from, date_to, created_at) of an Export object of ``export_type``, else None.

    Dates are read as instants: the API may write them with or without fractions.
    """
    if not isinstance(body, dict) or body.get("type") != export_type:
        return None
    start, end = _instant(body.get("date_from")), _instant(body.get("date_to"))
    if start is None or end is None:
        return None
    return start, end, _instant(body.get("created_at"))


class NextCommerceProvider(ExportProvider):
    """Creates, polls and locates Next Commerce CSV exports."""

    facts = ProviderFacts(
        name="nextcommerce",
        title="Next Commerce",
        file_format="csv",
        streams=NEXTCOMMERCE_STREAMS,
        default_window_days=30,
        max_window_days=None,  # not published: window size is a setting
        default_max_concurrent_exports=4,  # not published: a polite default
        requests_per_second=4.0,
        max_concurrent_requests=None,
        supports_webhook=True,
        file_reader=CsvFileReader,
        file_extension="csv",
        window_value=same_instant,
        files_add_columns=True,
        token_description="Next Commerce OAuth access token (scopes exports:read, exports:write)",
        api_url_example="`http://127.0.0.1:8000/api/admin/` (Next Commerce)",
    )
    settings_properties = (
        Setting("store", "string", "Store", "Next Commerce store subdomain (`{{store}}.29next.store`)."),
        Setting(
            "api_version", "string", "API version", "Next Commerce API version header.", default="2024-04-01"
        ),
        Setting(
            "webhook_listen",
            "string",
            "Webhook listen address",
            "Next Commerce: `host:port` to receive export.created webhooks during a sync (polling "
            "continues as a fallback).",
        ),
        Setting(
            "webhook_secret",
            "string",
            "Webhook secret",
            "Next Commerce webhook signing secret (required with webhook_listen).",
            secret=True,
        ),
    )

    @classmethod
    def read_section(cls, config: Mapping[str, Any], *, require_credentials: bool) -> AccountSection:
        """The store's host (or ``api_url``); the account is the store, else the API host."""
        store = opt_str(config, "store")
        api_url = opt_str(config, "api_url")
        if not api_url:
            if not store:
                raise ConfigError(
                    "setting 'store' is missing: set it to your Next Commerce subdomain "
                    "(the part before .29next.store), or set 'api_url'"
                )
            if not _is_subdomain(store):
                raise ConfigError(f"setting 'store' is '{store}': give only the subdomain, e.g. 'mystore'")
            api_url = f"https://{store}.29next.store/api/admin/"
        if not api_url.endswith("/"):
            api_url += "/"
        # The account that keys state: the store, else the API host (an IP stays whole).
        store = store or (urlsplit(api_url).hostname or "store")
        return AccountSection(api_url=api_url, store=store, merchant_id=opt_str(config, "merchant_id"))

    account_keys = ("store", "access_token", "sandbox_token", "api_url", "webhook_secret")

    def __init__(self, settings: AccountSettings, *, app_limiter: RateLimiter | None = None) -> None:
        super().__init__(settings, app_limiter=app_limiter)
        name = settings.setting_name
        self.api = ApiClient(
            settings.api_url,
            {
                "Authorization": f"Bearer {settings.access_token}",
                "X-29Next-API-Version": settings.api_version,
            },
            self.limiter(settings.max_requests_per_second),
            auth_hint=f"check '{name('access_token')}' (it needs the exports:read and "
            f"exports:write scopes) and '{name('store')}'",
        )

    @classmethod
    def account_of(cls, settings: AccountSettings) -> str:
        return settings.store or "default"

    def check_access(self) -> str:
        try:
            body = self.api.get_json("exports/types/")
        except ApiError as exc:
            if exc.status == 404:
                name = self.settings.setting_name
                raise ConfigError(
                    f"the exports API was not found at {self.settings.api_url}: check "
                    f"'{name('store')}' or '{name('api_url')}'"
                ) from None
            raise
        codes = [t.get("code") for t in body.get("types", []) if isinstance(t, dict)]
        missing = [s.export_type for s in self.facts.streams if s.export_type not in codes]
        summary = f"Next Commerce store '{self.account}': {len(codes)} export types available"
        if missing:
            summary += f" (not offered: {', '.join(missing)})"
        return summary

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        # Boundary rule: see windows.py. date_to is the exact window end.
        try:
            response = self.api.post_json(
                "exports/",
                {"type": export_type, "date_from": iso_z(window.start), "date_to": iso_z(window.end)},
                idempotent=False,
            )
        except AnswerLost as lost:
            raise CreateAnswerLost(str(lost)) from None
        return self._status(response_json(response))

    can_find_exports = True

    def recent_exports(self, export_type: str, since: datetime) -> list[FoundExport]:
        # the creation-day filter is a date (its time zone is not published): a day early,
        # then the exact instant from each export's created_at
        day = (since.astimezone(timezone.utc) - timedelta(days=1)).date().isoformat()
        url: str | None = "exports/"
        params: dict[str, str] | None = {"type": export_type, "date_created_from": day}
        found: list[FoundExport] = []
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            body = self.api.get_json(url, params=params)
            params = None  # ``next`` carries the filters and the cursor
            results = body.get("results") if isinstance(body, dict) else None
            for item in results or []:
                dates = found_export(item, export_type)
                if dates is None or (dates[2] is not None and dates[2] < since):
                    continue
                found.append(FoundExport(dates[0], dates[1], self._status(item), dates[2]))
            nxt = body.get("next") if isinstance(body, dict) else None
            url = str(nxt) if nxt else None
        return found

    def get_export(self, export_id: str) -> ExportStatus:
        try:
            return self._status(self.api.get_json(f"exports/{quote(export_id, safe='')}/"))
        except ApiError as exc:
            if exc.status == 404:
                raise ExportGone(export_id) from None
            raise

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        body = self.api.get_json(f"exports/{quote(status.export_id, safe='')}/download/")
        url = url_of(body, "url", f"export {status.export_id} download")
        if not url:
            raise ApiError(f"export {status.export_id}: the download endpoint gave no URL")
        return [str(url)]

    def store_facts(self) -> StoreFacts:
        """The store's time zone (``GET store/``, scope ``store:read``) and the types of
        its export metadata columns (``GET metadata/``, scope ``metadata:read``)."""
        zone, zone_note = self._store_timezone()
        types, types_note = self._metadata_types()
        notes = tuple(n for n in (zone_note, types_note) if n)
        return StoreFacts(timezone=zone, column_types=types, notes=notes)

    def _store_timezone(self) -> tuple[str | None, str | None]:
        response = self.api.request("GET", "store/", passthrough=_REFUSED)
        if response.status_code in _REFUSED:
            return None, f"GET store/ answered HTTP {response.status_code} (the token needs scope store:read)"
        body = response_json(response)
        if isinstance(body, list):  # the spec says a list of Store; a store is one object
            body = body[0] if body else None
        zone = body.get("timezone") if isinstance(body, dict) else None
        if not isinstance(zone, str) or not zone.strip():
            return None, "GET store/ gave no 'timezone'"
        try:
            ZoneInfo(zone.strip())
        except (ValueError, ZoneInfoNotFoundError):
            return None, f"GET store/ gave a 'timezone' this machine does not know ({zone[:60]!r})"
        return zone.strip(), None

    def _metadata_types(self) -> tuple[dict[str, dict[str, dict[str, Any]]], str | None]:
        """stream -> column -> schema of the metadata definitions enabled on exports.
        Which header a column gets is not published: its name and its key both match."""
        types: dict[str, dict[str, dict[str, Any]]] = {}
        url: str | None = "metadata/"
        params: dict[str, str] | None = {"enable_export": "true"}
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            response = self.api.request("GET", url, params=params, passthrough=_REFUSED)
            if response.status_code in _REFUSED:
                return {}, f"GET metadata/ answered HTTP {response.status_code} (scope metadata:read)"
            body, params = response_json(response), None
            results = body.get("results") if isinstance(body, dict) else None
            for item in results if isinstance(results, list) else []:
                if not isinstance(item, dict) or item.get("enable_export") is False:
                    continue
                schema = METADATA_TYPES.get(str(item.get("type")))
                if schema is None:
                    continue
                names = {normalize_header(str(item[k])) for k in ("name", "key") if item.get(k)}
                for stream in METADATA_STREAMS.get(str(item.get("object")), ()):
                    types.setdefault(stream, {}).update({n: dict(schema) for n in names if n})
            nxt = body.get("next") if isinstance(body, dict) else None
            url = str(nxt) if nxt else None
        return types, None

    def close(self) -> None:
        self.api.close()

    @staticmethod
    def _status(body: object) -> ExportStatus:
        if not isinstance(body, dict) or "id" not in body:
            raise ApiError("the exports API answered without an export object: check 'api_url'")
        export_id = export_id_of(body)
        raw = text_of(body, "status", f"export {export_id}")
        phase = STATUS_PHASES.get(raw.lower(), ExportPhase.FAILED)
        # the Export object says what it was made for: type, date_from, date_to (OpenAPI)
        start, end = _instant(body.get("date_from")), _instant(body.get("date_to"))
        return ExportStatus(
            export_id=export_id,
            phase=phase,
            raw_status=raw,
            export_type=text_of(body, "type", f"export {export_id}") or None,
            window=(start, end) if start is not None and end is not None else None,
        )
