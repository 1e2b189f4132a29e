#!/usr/bin/env python3
"""The work ``scripts/bench.py`` runs in fresh child processes (one workload per process).

    python scripts/bench_child.py MODE SPEC_JSON

MODE is one of ``floor``, ``ours``, ``sdk`` (the record-path contenders: read the CSV at
``spec["csv"]`` and write Singer RECORD messages to this process's stdout, which the
parent points at a file) or ``sync`` (a whole ``ExportSync`` run against the sandbox, its
output to /dev/null, then the engine's per-job timestamps). The result is one JSON object
written to ``spec["result"]``. Timings (wall and this process's CPU time) cover the work only: imports and setup happen
before the clock starts, so the three record paths are compared on what they do per row.

Also holds the shared definition of the benchmark CSV (schema, columns, generator), so
the parent and the children agree on it.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ORDERS_SCHEMA_PATH = ROOT / "tap_commerce_exports" / "schemas" / "nextcommerce" / "orders.json"

#: The 20 columns of the benchmark orders CSV, in file order. 18 are properties of the
#: shipped orders schema; the orders schema has no integer property, so two integer
#: columns (``customer_id``, ``lines_count``) are added to the schema copy that all
#: three contenders use (see :func:`bench_schema`).
EXTRA_INTEGER_PROPERTIES = ("customer_id", "lines_count")
COLUMNS: tuple[str, ...] = (
    "number",
    "created_at",
    "updated_at",
    "date_placed",
    "currency",
    "status",
    "payment_status",
    "fulfillment_status",
    "source",
    "shipping_method",
    "is_test",
    "supports_post_purchase_upsells",
    "total_incl_tax",
    "total_excl_tax",
    "total_tax",
    "total_discount",
    "shipping_incl_tax",
    "total_outstanding",
    "customer_id",
    "lines_count",
)
GENERATOR_VERSION = 1
WINDOW_FIELD = "created_at"
#: The generated rows' created_at lie in [BASE, BASE + rows * 13 s); 200k rows = 30 days.
BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
WINDOW_START = datetime(2024, 12, 1, tzinfo=timezone.utc)
WINDOW_END = datetime(2026, 1, 1, tzinfo=timezone.utc)


def bench_schema() -> dict[str, Any]:
    """The shipped orders schema plus the two integer columns."""
    schema = json.loads(ORDERS_SCHEMA_PATH.read_text(encoding="utf-8"))
    props = dict(schema["properties"])
    for name in EXTRA_INTEGER_PROPERTIES:
        props[name] = {"type": ["integer", "null"]}
    missing = [c for c in COLUMNS if c not in props]
    if missing:  # the shipped schema changed under us
        raise SystemExit(f"bench: orders schema lacks columns {missing}")
    return dict(schema, properties=props)


def generate_csv(path: Path, rows: int, seed: int = 20250101) -> None:
    """A realistic orders export: offsets +02:00/-05:00/+05:30/Z/+00:00, a third with
    microseconds, money with cents (some negative), booleans, empty cells, quoted commas."""
    rng = random.Random(seed)
    offsets = [
        timezone.utc,
        timezone(timedelta(hours=2)),
        timezone(timedelta(hours=-5)),
        timezone(timedelta(hours=5, minutes=30)),
        timezone.utc,
    ]
    currencies = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY")
    statuses = ("open", "complete", "canceled", "partially_refunded")
    payment = ("paid", "pending", "authorized", "refunded", "partially_paid", "voided")
    fulfil = ("unfulfilled", "fulfilled", "processing", "not_required", "on_hold")
    sources = ("web", "api", "admin", "subscription")
    methods = ("Standard Shipping", "Express, 2-day", 'The "Fast" one', "Free 🚚", "")

    def stamp(moment: datetime) -> str:
        tz = rng.choice(offsets)
        text = moment.astimezone(tz).isoformat()
        return text.replace("+00:00", "Z") if rng.random() < 0.5 else text

    def money(lo: int, hi: int) -> str:
        cents = rng.randint(lo, hi)
        sign = "-" if cents < 0 else ""
        cents = abs(cents)
        return f"{sign}{cents // 100}.{cents % 100:02d}"

    tmp = path.with_suffix(".part")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for i in range(rows):
            created = BASE + timedelta(
                seconds=i * 13, microseconds=rng.randrange(1_000_000) if i % 3 == 0 else 0
            )
            writer.writerow(
                [
                    f"{100000 + i}",
                    stamp(created),
                    stamp(created + timedelta(seconds=rng.randint(60, 5 * 86400))),
                    stamp(created + timedelta(seconds=rng.randint(0, 90))) if i % 5 else "",
                    rng.choice(currencies),
                    rng.choice(statuses),
                    rng.choice(payment),
                    rng.choice(fulfil),
                    rng.choice(sources),
                    rng.choice(methods),
                    rng.choice(("true", "false")),
                    rng.choice(("True", "False", "")),
                    money(0, 20000),
                    money(0, 20000),
                    money(0, 3000),
                    money(0, 2000),
                    money(0, 1800) if i % 7 else "",
                    money(-500, 500),
                    str(rng.randint(1, 5_000_000)),
                    str(rng.randint(1, 12)) if i % 11 else "",
                ]
            )
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- workloads


def _count_records(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if b'"RECORD"' in line[:40]:
                n += 1
    return n


def run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The bare floor: csv.reader, the same converters, msgspec into a buffered file."""
    import msgspec

    from tap_commerce_exports.files import csv_converter
    from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY

    props = bench_schema()["properties"]
    account = "127.0.0.1"  # the account of run_ours's config (its api_url host)
    out = sys.stdout.buffer  # the parent points stdout at a file
    encoder = msgspec.json.Encoder(decimal_format="number")
    time_extracted = datetime.now(timezone.utc).isoformat()
    prefix = b'{"type":"RECORD","stream":"orders","record":'
    suffix = b',"time_extracted":' + msgspec.json.encode(time_extracted) + b"}\n"
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    buf = bytearray()
    encode_into = encoder.encode_into
    with open(spec["csv"], newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        converters = [csv_converter(props[c]) for c in header]
        pairs = list(zip(header, converters, strict=False))
        for row in reader:
            record = {
                name: ((conv(cell) if conv is not None else cell) if cell else None)
                for (name, conv), cell in zip(pairs, row, strict=False)
            }
            record[ACCOUNT_PROPERTY] = account  # every record says whose it is, as ours does
            buf += prefix
            encode_into(record, buf, -1)
            buf += suffix
            n += 1
            if len(buf) > 65536:
                out.write(buf)
                buf.clear()
    out.write(buf)
    out.flush()
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rows": n}


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Exactly the sync's RecordEmitter.emit: CsvFileReader (orders schema, WindowFilter)
    feeding SingerOutput.record_writer, through the real ExportSync object."""
    from tap_commerce_exports.jobs.job import ExportJob
    from tap_commerce_exports.singer.emitters import StreamProgress
    from tap_commerce_exports.singer.output import SingerOutput
    from tap_commerce_exports.singer.selection import deselected_paths
    from tap_commerce_exports.singer.sync import ExportSync
    from tap_commerce_exports.tap import TapCommerceExports
    from tap_commerce_exports.windows import Window

    config = {
        "provider": "nextcommerce",
        "access_token": "bench",
        "api_url": "http://127.0.0.1:9/api/admin/",
        "start_date": WINDOW_START.isoformat(),
        "end_date": WINDOW_END.isoformat(),
        "window_days": (WINDOW_END - WINDOW_START).days,
    }
    tap = TapCommerceExports(config=config)
    stream = tap.streams["orders"]
    # SingerOutput() writes to sys.stdout.buffer, which the parent points at a file
    sync = ExportSync(tap, tap.settings, output=SingerOutput())
    progress = StreamProgress(stream, bench_schema(), deselected=deselected_paths(stream.mask))
    job = ExportJob(stream=stream.definition, window=Window(WINDOW_START, WINDOW_END), seq=0)
    job.files = [Path(spec["csv"])]
    emitter = sync.emitter()  # RECORD messages: this config sets no batch_config
    emitter.announce(progress)  # as run() does before any record
    sync.output.flush()
    start, cpu = time.perf_counter(), time.process_time()
    emitter.emit(job, progress, sync.provider.account)  # the measured path
    sync.output.flush()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    sync.provider.close()
    return {"seconds": seconds, "cpu": cpu, "rows": progress.records}


def run_sdk(spec: dict[str, Any]) -> dict[str, Any]:
    """singer-sdk's default path: a Stream yielding csv.DictReader rows (strings), the
    SDK's default conformance and default writer, stdout (a file)."""
    from singer_sdk import Stream, Tap
    from singer_sdk import typing as th

    schema = bench_schema()
    csv_path = spec["csv"]

    class CsvOrders(Stream):
        name = "orders"
        primary_keys = ["number"]  # noqa: RUF012

        def get_records(self, context):  # noqa: ANN001, ANN201
            with open(csv_path, newline="", encoding="utf-8") as fh:
                yield from csv.DictReader(fh)

    class SdkBenchTap(Tap):
        name = "tap-bench-sdk-default"
        config_jsonschema = th.PropertiesList().to_dict()

        def discover_streams(self):  # noqa: ANN201
            return [CsvOrders(self, schema=schema)]

    tap = SdkBenchTap(config={}, validate_config=False)
    start, cpu = time.perf_counter(), time.process_time()
    tap.sync_all()
    sys.stdout.flush()
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rows": None}


def run_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """One ExportSync.run() over every stream; output to /dev/null; per-job timestamps."""
    from tap_commerce_exports.singer.output import SingerOutput
    from tap_commerce_exports.singer.sync import ExportSync
    from tap_commerce_exports.tap import TapCommerceExports

    class CountingOutput(SingerOutput):
        records = 0

        def record_writer(self, stream, time_extracted):  # noqa: ANN001, ANN201
            write = super().record_writer(stream, time_extracted)
            owner = self

            def counted(record):  # noqa: ANN001, ANN202
                owner.records += 1
                write(record)

            return counted

    tap = TapCommerceExports(config=spec["config"])
    devnull = open(os.devnull, "wb")  # noqa: SIM115
    sync = ExportSync(tap, tap.settings, output=CountingOutput(devnull))
    error = None
    start = time.monotonic()
    try:
        sync.run()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        error = f"{type(exc).__name__}: {exc}"
    end = time.monotonic()
    jobs = []
    for job in sync.orchestrator._jobs if sync.orchestrator else ():  # noqa: SLF001
        jobs.append(
            {
                "stream": job.stream.name,
                "export_id": job.export_id,
                "state": job.state.value,
                "first_attempt_at": job.first_attempt_at,
                "created_at": job.created_at,
                "download_started_at": job.download_started_at,
                "checks": job.checks,
                "bytes": job.bytes_downloaded,
            }
        )
    return {
        "start": start,
        "end": end,
        "seconds": end - start,
        "records": sync.output.records,
        "jobs": jobs,
        "error": error,
    }


MODES = {"floor": run_floor, "ours": run_ours, "sdk": run_sdk, "sync": run_sync}


def main() -> None:
    mode, spec_text = sys.argv[1], sys.argv[2]
    spec = json.loads(spec_text)
    result = MODES[mode](spec)
    if mode in ("floor", "ours", "sdk") and spec.get("count_output"):
        result["records_in_output"] = _count_records(spec["output"])
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
