"""The file layer: downloaded export files -> typed records.

CSV files (Next Commerce) go through :class:`CsvFileReader`, JSON ``{"elements": [...]}``
files (Clover) through :class:`JsonElementsFileReader`; both drop records outside the
requested :class:`WindowFilter` and report bad records through ``on_invalid``.
"""

from tap_commerce_exports.files.converters import Converter, csv_converter, utc_instant_text
from tap_commerce_exports.files.csv_reader import CsvFileReader
from tap_commerce_exports.files.headers import normalize_header, normalize_headers
from tap_commerce_exports.files.json_reader import JsonElementsFileReader
from tap_commerce_exports.files.reader_base import ExportFileReader
from tap_commerce_exports.files.window import WindowFilter

__all__ = [
    "Converter",
    "CsvFileReader",
    "ExportFileReader",
    "JsonElementsFileReader",
    "WindowFilter",
    "csv_converter",
    "normalize_header",
    "normalize_headers",
    "utc_instant_text",
]
