"""Next Commerce (formerly 29 Next) Admin API exports: only this platform's facts.

Endpoints (relative to ``https://{store}.29next.store/api/admin/``): ``POST exports/``,
``GET exports/{id}/``, ``GET exports/{id}/download/`` -> ``{"url": signed CSV URL}``,
``GET exports/types/``. Bearer token + ``X-29Next-API-Version``. 4 requests/s per token.
Statuses: ``pending`` and ``available`` are documented; anything else is a failure.
"""

from __future__ import annotations

from urllib.parse import quote

from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.http.api_client import ApiClient, ApiError, response_json
from tap_commerce_exports.http.ratelimit import RateLimiter
from tap_commerce_exports.providers.answers import export_id_of, text_of, url_of
from tap_commerce_exports.providers.base import (
    ExportPhase,
    ExportProvider,
    ExportStatus,
)
from tap_commerce_exports.providers.registry import PROVIDERS
from tap_commerce_exports.settings import Settings
from tap_commerce_exports.windows import Window, iso_z

STATUS_PHASES = {"pending": ExportPhase.PENDING, "available": ExportPhase.DONE}


class NextCommerceProvider(ExportProvider):
    """Creates, polls and locates Next Commerce CSV exports."""

    facts = PROVIDERS["nextcommerce"]

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.api = ApiClient(
            settings.api_url,
            {
                "Authorization": f"Bearer {settings.access_token}",
                "X-29Next-API-Version": settings.api_version,
            },
            RateLimiter(settings.max_requests_per_second),
            auth_hint="check 'access_token' (it needs the exports:read and exports:write scopes) and 'store'",
        )

    @property
    def account(self) -> str:
        return self.settings.store or "default"

    def check_access(self) -> str:
        try:
            body = self.api.get_json("exports/types/")
        except ApiError as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"the exports API was not found at {self.settings.api_url}: check 'store' or 'api_url'"
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
        response = self.api.post_json(
            "exports/",
            {"type": export_type, "date_from": iso_z(window.start), "date_to": iso_z(window.end)},
        )
        return self._status(response_json(response))

    def get_export(self, export_id: str) -> ExportStatus:
        return self._status(self.api.get_json(f"exports/{quote(export_id, safe='')}/"))

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        body = self.api.get_json(f"exports/{quote(status.export_id, safe='')}/download/")
        url = url_of(body, "url", f"export {status.export_id} download")
        if not url:
            raise ApiError(f"export {status.export_id}: the download endpoint gave no URL")
        return [str(url)]

    def close(self) -> None:
        self.api.close()

    @staticmethod
    def _status(body: object) -> ExportStatus:
        if not isinstance(body, dict) or "id" not in body:
            raise ApiError("the exports API answered without an export object: check 'api_url'")
        export_id = export_id_of(body)
        raw = text_of(body, "status", f"export {export_id}")
        phase = STATUS_PHASES.get(raw.lower(), ExportPhase.FAILED)
        return ExportStatus(export_id=export_id, phase=phase, raw_status=raw)
