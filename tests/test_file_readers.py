"""What every export-file reader shares: one constructor (the base's), one way to fail.

A format adds only what is its own (``_open``, ``_records``, ``close``); the Singer layer
opens any of them with the same call, and a file refused while it is opened leaves
nothing open behind the error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tap_commerce_exports.errors import InvalidFile, InvalidRecord
from tap_commerce_exports.files import CsvFileReader, JsonElementsFileReader, WindowFilter
from tap_commerce_exports.files.reader_base import ExportFileReader

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
GOOD = {
    CsvFileReader: "id,created_at,colour\n1,2025-01-01T10:00:00Z,red\n",
    JsonElementsFileReader: '{"elements": [{"id": 1, "created_at": "2025-01-01T10:00:00Z", "colour": "red"}]}',
}
#: A file each reader refuses while opening it (before any record).
REFUSED = {
    CsvFileReader: "created_at,colour\n2025-01-01T10:00:00Z,red\n",  # no primary-key column
    JsonElementsFileReader: '{"elements": 3}',  # no elements list
}
READERS = list(GOOD)


def open_reader(cls: type[ExportFileReader], path: Path) -> ExportFileReader:
    def refuse(error: InvalidRecord) -> None:
        raise error

    return cls(
        path, SCHEMA, stream="things", file_label="things file 1", on_invalid=refuse, primary_keys=["id"]
    )


@pytest.mark.parametrize("reader", READERS, ids=lambda c: c.__name__)
def test_every_reader_is_opened_by_the_one_constructor_of_the_base(reader: type[ExportFileReader]) -> None:
    assert "__init__" not in vars(reader)


@pytest.mark.parametrize("reader", READERS, ids=lambda c: c.__name__)
def test_every_reader_says_its_columns_and_those_the_schema_lacks_alike(
    tmp_path: Path, reader: type[ExportFileReader]
) -> None:
    path = tmp_path / "export"
    path.write_text(GOOD[reader], encoding="utf-8")

    with open_reader(reader, path) as opened:
        assert sorted(opened.columns) == ["colour", "created_at", "id"]
        assert opened.unknown_columns == ["colour"]
        assert [r["id"] for r in opened] == [1]


@pytest.mark.parametrize("reader", READERS, ids=lambda c: c.__name__)
def test_a_file_refused_while_it_is_opened_is_closed_before_the_error_reaches_the_caller(
    tmp_path: Path, reader: type[ExportFileReader]
) -> None:
    closed: list[ExportFileReader] = []

    class Watched(reader):  # type: ignore[misc, valid-type]
        def close(self) -> None:
            closed.append(self)
            super().close()

    path = tmp_path / "export"
    path.write_text(REFUSED[reader], encoding="utf-8")

    with pytest.raises(InvalidFile):
        open_reader(Watched, path)

    assert len(closed) == 1
    held = getattr(closed[0], "_file", None)
    assert held is None or held.closed


def test_a_window_filter_is_given_to_every_reader_the_same_way(tmp_path: Path) -> None:
    window = WindowFilter(
        "created_at", "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00", ("created_at",)
    )
    for reader in READERS:
        path = tmp_path / f"export-{reader.__name__}"
        path.write_text(GOOD[reader], encoding="utf-8")
        with reader(
            path, SCHEMA, stream="things", file_label="f", on_invalid=lambda e: None, window=window
        ) as opened:
            assert opened.window_column == "created_at"
