"""BATCH files (singer/batch/, config/batch.py): the setting, the files, their names, their cleanup."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tap_commerce_exports.config.batch import BatchSettings, parse_batch_config
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.singer.batch.cleanup import remove_loaded
from tap_commerce_exports.singer.batch.encoders import parquet_refusal, utc_instant_converter
from tap_commerce_exports.singer.batch.file_set import BatchFileSet

UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 16, tzinfo=UTC)
SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "total": {"type": ["number", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "note": {"type": ["string", "null"]},
    }
}


def settings(root: Path, **overrides) -> BatchSettings:
    raw = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": root.as_uri()}}
    raw.update(overrides)
    parsed = parse_batch_config(raw)
    assert parsed is not None
    return parsed


PIPELINE = "feedfacecafe"


def file_set(
    s: BatchSettings, announced: list, *, account="demo-store", run_id=f"{PIPELINE}-0123456789ab", **kw
):
    return BatchFileSet(
        s,
        stream=kw.pop("stream", "orders"),
        schema=kw.pop("schema", SCHEMA),
        account=account,
        start=kw.pop("start", START),
        end=kw.pop("end", END),
        run_id=run_id,
        announce=lambda stream, manifest: announced.append((stream, manifest)),
        **kw,
    )


def read_jsonl(url: str) -> list[dict]:
    path = Path(url.removeprefix("file://"))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# ----------------------------------------------------------------------------- the setting


def test_no_batch_config_means_record_messages():
    assert parse_batch_config(None) is None
    assert parse_batch_config({}) is None


def test_the_sdk_shaped_setting_is_read_with_its_defaults(tmp_path):
    s = parse_batch_config({"encoding": {"format": "jsonl"}, "storage": {"root": tmp_path.as_uri()}})
    assert s is not None
    assert (s.format, s.compression, s.root, s.prefix) == ("jsonl", "gzip", tmp_path, "")
    assert s.encoding == {"format": "jsonl", "compression": "gzip"}
    plain = settings(tmp_path, encoding={"format": "jsonl", "compression": "none"})
    assert plain.encoding == {"format": "jsonl", "compression": "none"} and plain.suffix == ".jsonl"


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("yes", "batch_config"),
        ({"encoding": {"format": "csv"}, "storage": {"root": "file:///tmp/x"}}, "encoding.format"),
        ({"encoding": {"compression": "zstd"}, "storage": {"root": "file:///tmp/x"}}, "encoding.compression"),
        ({"encoding": {"format": "jsonl"}, "storage": {}}, "storage.root"),
        ({"storage": {"root": "s3://bucket/batches"}}, "storage.root"),
        ({"storage": {"root": "file://otherhost/batches"}}, "storage.root"),
        ({"storage": {"root": "relative/folder"}}, "storage.root"),
        ({"storage": {"root": "file:///tmp/x", "prefix": "../escape-"}}, "storage.prefix"),
        ({"storage": {"root": "file:///tmp/x"}, "batch_size": 0}, "batch_size"),
        ({"storage": {"root": "file:///tmp/x"}, "batch_size": "many"}, "batch_size"),
        ({"storage": {"root": "file:///tmp/x"}, "bach_size": 10}, "bach_size"),
    ],
)
def test_a_bad_batch_config_is_refused_in_one_line_naming_the_key(raw, names):
    with pytest.raises(ConfigError) as caught:
        parse_batch_config(raw)
    message = str(caught.value)
    assert names in message and "\n" not in message


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_is_refused_saying_what_to_install(tmp_path):
    with pytest.raises(ConfigError, match=r"needs pyarrow: install tap-commerce-exports\[parquet\]"):
        parse_batch_config({"encoding": {"format": "parquet"}, "storage": {"root": tmp_path.as_uri()}})


def test_parquet_refuses_streams_whose_objects_it_could_not_give_back():
    assert parquet_refusal("orders", SCHEMA) is None
    nested = {"properties": {"id": {"type": "string"}, "lineItems": {"type": ["object", "null"]}}}
    refusal = parquet_refusal("orders", nested)
    assert refusal is not None and "'lineItems'" in refusal and "jsonl" in refusal


# ----------------------------------------------------------------------------- the files


def test_records_go_into_gzip_json_lines_files_rotated_at_batch_size_each_announced_once_complete(tmp_path):
    s = settings(tmp_path, batch_size=2)
    announced: list = []
    files = file_set(s, announced)
    records = [{"id": i, "total": Decimal("1.10"), "created_at": None, "note": f"n{i}"} for i in range(5)]
    for i, record in enumerate(records):
        files.write(dict(record))
        assert len(announced) == (i + 1) // 2  # a file is announced the moment it is full
    files.complete()
    assert [stream for stream, _ in announced] == ["orders"] * 3
    manifests = [manifest for _, manifest in announced]
    assert all(len(m) == 1 and m[0].startswith("file:///") for m in manifests)
    got = [r for m in manifests for r in read_jsonl(m[0])]
    assert got == [dict(r, total=1.10) for r in records]
    assert b'"total":1.10' in gzip.decompress(Path(manifests[0][0][7:]).read_bytes())  # exact, as RECORD


def test_batch_files_are_readable_by_their_owner_only_and_no_partial_file_remains(tmp_path):
    s = settings(tmp_path / "new-folder")
    announced: list = []
    files = file_set(s, announced)
    files.write({"id": 1})
    assert [p.name for p in s.root.iterdir()][0].startswith(".")  # still a hidden partial
    files.complete()
    names = sorted(p.name for p in s.root.iterdir())
    assert len(names) == 1 and not names[0].startswith(".")
    assert stat.S_IMODE(os.stat(s.root / names[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(s.root).st_mode) == 0o700


def test_an_empty_window_writes_and_announces_no_file(tmp_path):
    announced: list = []
    file_set(settings(tmp_path), announced).complete()
    assert announced == [] and list(tmp_path.iterdir()) == []


def test_a_discarded_set_removes_its_unfinished_file_and_keeps_announced_ones(tmp_path):
    s = settings(tmp_path, batch_size=2)
    announced: list = []
    files = file_set(s, announced)
    for i in range(3):
        files.write({"id": i})
    files.discard()
    assert [p.name for p in tmp_path.iterdir()] == [Path(announced[0][1][0]).name]


def test_names_never_collide_across_runs_accounts_streams_or_windows(tmp_path):
    s = settings(tmp_path, storage={"root": tmp_path.as_uri(), "prefix": "pipeline-a-"})
    announced: list = []
    variants = [
        {},
        {"run_id": f"{PIPELINE}-ba9876543210"},
        {"account": "other-store"},
        {"stream": "customers"},
        {"start": END, "end": END + timedelta(days=15)},
    ]
    for kw in variants:
        files = file_set(s, announced, **kw)
        files.write({"id": 1})
        files.complete()
    names = {Path(m[0]).name for _, m in announced}
    assert len(names) == len(variants)
    assert all(n.startswith("pipeline-a-") for n in names)


def test_date_times_are_written_in_utc_the_same_instants(tmp_path):
    announced: list = []
    files = file_set(settings(tmp_path), announced)
    values = ["2024-12-31T19:02:09-05:00", "2025-01-01T05:32:49.5+05:30", "2025-01-01T00:00:00Z", None]
    for i, value in enumerate(values):
        files.write({"id": i, "created_at": value})
    files.complete()
    got = [r["created_at"] for r in read_jsonl(announced[0][1][0])]
    assert got[3] is None
    for original, written in zip(values[:3], got[:3], strict=True):
        assert written.endswith("Z")
        assert datetime.fromisoformat(written) == datetime.fromisoformat(original)


def test_the_utc_conversion_leaves_what_it_cannot_parse_alone():
    to_utc = utc_instant_converter(always=False)
    assert to_utc("not a date") == "not a date"
    assert to_utc(17) == 17
    assert to_utc("2025-01-01T00:00:00+00:00") == "2025-01-01T00:00:00+00:00"
    odd = to_utc("2025-01-01T00:00:00+05:45:30")
    assert odd == datetime(2024, 12, 31, 18, 14, 30, tzinfo=UTC)


def test_parquet_files_hold_the_same_typed_values(tmp_path, require):
    require.module("pyarrow", "the parquet extra: run `make install`")
    import pyarrow.parquet as pq

    s = settings(tmp_path, encoding={"format": "parquet"})
    announced: list = []
    files = file_set(s, announced)
    files.write({"id": 1, "total": Decimal("12.34"), "created_at": "2024-12-31T19:02:09-05:00", "note": "x"})
    files.write({"id": 2, "total": None, "created_at": None, "note": None})
    files.complete()
    rows = pq.read_table(announced[0][1][0][7:]).to_pylist()
    assert rows[0] == {
        "id": 1,
        "total": Decimal("12.340000000"),
        "created_at": datetime(2025, 1, 1, 0, 2, 9, tzinfo=UTC),
        "note": "x",
    }
    assert rows[1] == {"id": 2, "total": None, "created_at": None, "note": None}


# ----------------------------------------------------------------------------- cleanup


def test_the_next_run_removes_exactly_the_files_its_bookmark_proves_loaded(tmp_path):
    s = settings(tmp_path, storage={"root": tmp_path.as_uri(), "prefix": "p-"})
    announced: list = []
    windows = [(START + timedelta(days=15 * i), START + timedelta(days=15 * (i + 1))) for i in range(3)]
    for start, end in windows:
        for kw in ({}, {"account": "other-store"}, {"stream": "customers"}):
            files = file_set(s, announced, start=start, end=end, **kw)
            files.write({"id": 1})
            files.complete()
    other_prefix = settings(tmp_path, storage={"root": tmp_path.as_uri(), "prefix": "q-"})
    foreign = file_set(other_prefix, announced)
    foreign.write({"id": 1})
    foreign.complete()
    in_progress = file_set(s, announced)  # a run writing now: its .partial is never touched
    in_progress.write({"id": 1})
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("mine")

    before = {p.name for p in tmp_path.iterdir()}
    removed = remove_loaded(s, "orders", "demo-store", windows[1][1], PIPELINE)
    after = {p.name for p in tmp_path.iterdir()}
    gone = before - after
    assert removed == 2 == len(gone)  # windows 1 and 2 of orders/demo-store
    assert all(n.startswith("p-orders.demo-store-") for n in gone)
    assert any("20250131T000000Z-20250215T000000Z" in n for n in after if n.startswith("p-orders.demo-store"))
    assert "notes.txt" in after and any(n.endswith(".partial") for n in after)
    in_progress.complete()
