"""A provider that lives in the tests folder alone: proof that a new platform is one
module plus a registration, and that nothing outside ``providers/`` names a platform.

Its export API is in memory (every export is ready at once: the engine's polling is
tested elsewhere); its files are CSV served by a real HTTP server on loopback, so the
real downloader, reader, engine and Singer layer all run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tap_commerce_exports.files.csv_reader import CsvFileReader
from tap_commerce_exports.providers.base import (
    ExportPhase,
    ExportProvider,
    ExportStatus,
    ProviderFacts,
    same_instant,
)
from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.windows import Window

THINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "name": {"type": ["string", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

#: Rows of the ``things`` export type: the fake's whole "database".
ROWS: list[dict[str, str]] = [
    {"id": "1", "name": "first", "created_at": "2025-01-01T10:00:00Z", "colour": "red"},
    {"id": "2", "name": "second", "created_at": "2025-01-02T00:00:00Z", "colour": "blue"},
    {"id": "3", "name": "third", "created_at": "2025-01-02T23:59:59Z", "colour": ""},
    {"id": "4", "name": "fourth", "created_at": "2025-01-03T00:00:00Z", "colour": "green"},
]


class FakeFileHost:
    """CSV files by path on a loopback HTTP server (what a platform's file host is)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = host.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                host.downloads.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[FakeFileHost]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


#: The file host the provider objects of one test publish to (set by the test).
FILE_HOST: list[FakeFileHost] = []


class FakeProvider(ExportProvider):
    """Exports of ``things`` rows created in a window, one CSV file each, ready at once."""

    facts = ProviderFacts(
        name="fakeshop",
        title="Fake Shop",
        file_format="csv",
        streams=(
            ExportStreamDefinition(
                "things", "THINGS", ("id",), "created_at", "unused.json", schema=THINGS_SCHEMA
            ),
        ),
        default_window_days=1,
        max_window_days=None,
        default_max_concurrent_exports=2,
        requests_per_second=100.0,
        max_concurrent_requests=None,
        supports_webhook=False,
        file_reader=CsvFileReader,
        file_extension="csv",
        window_value=same_instant,
        files_add_columns=True,
    )

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.created: list[tuple[str, Window]] = []
        self._lock = threading.Lock()

    @property
    def account(self) -> str:
        return self.settings.store or "default"

    def check_access(self) -> str:
        return "Fake Shop: access OK"

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        host = FILE_HOST[0]
        with self._lock:
            self.created.append((export_type, window))
            export_id = f"x{len(self.created)}"
        # The platform's file holds the whole days the window touches: the tap keeps only
        # the rows inside the window (its boundary rule), so row 2 is read twice, kept once.
        lines = ["ID,Name,Created At,Colour"]
        lines += [f"{r['id']},{r['name']},{r['created_at']},{r['colour']}" for r in ROWS]
        host.files[f"/{export_id}.csv"] = ("\n".join(lines) + "\n").encode()
        return self._status(export_id)

    def get_export(self, export_id: str) -> ExportStatus:
        return self._status(export_id)

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        return [f"{FILE_HOST[0].url}/{status.export_id}.csv"]

    @staticmethod
    def _status(export_id: str) -> ExportStatus:
        return ExportStatus(export_id, ExportPhase.DONE, "ready")


__all__ = ["FILE_HOST", "ROWS", "FakeFileHost", "FakeProvider"]


@contextmanager
def registered(*classes: type[ExportProvider]) -> Iterator[FakeFileHost]:
    """Registers ``classes`` as a third provider would be (from outside the package, through
    the registry's public call) and serves their files from a fresh file host; afterwards
    both are undone, so no other spec sees these providers."""
    from tap_commerce_exports.providers import registry

    for cls in classes:
        registry.register_provider(cls)
    host = FakeFileHost()
    FILE_HOST[:] = [host]
    try:
        with host.running():
            yield host
    finally:
        FILE_HOST.clear()
        for cls in classes:
            registry.PROVIDER_CLASSES.pop(cls.facts.name, None)
            registry.PROVIDERS.pop(cls.facts.name, None)
