#!/usr/bin/env python3
"""Micro-benchmark: CsvFileReader against the bare floor of reading a typed CSV.

Why: the reader must stay within ~1.3x of the cheapest possible loop that produces the
same typed values (``csv.reader`` plus one converter call per non-empty cell). Not a
test: timings depend on the machine. Prints rows/s for each contender and the ratio.

    python scripts/bench_reader.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tap_commerce_exports.files import CsvFileReader, WindowFilter, csv_converter  # noqa: E402

# 20 columns: 4 integers, 5 money, 3 timestamps, 2 booleans, 1 date, 5 strings.
SCHEMA: dict[str, dict[str, object]] = {
    "id": {"type": "integer"},
    "order_id": {"type": ["integer", "null"]},
    "quantity": {"type": ["integer", "null"]},
    "product_id": {"type": ["integer", "null"]},
    "total_incl_tax": {"type": ["number", "null"]},
    "total_excl_tax": {"type": ["number", "null"]},
    "total_tax": {"type": ["number", "null"]},
    "shipping_incl_tax": {"type": ["number", "null"]},
    "total_discount": {"type": ["number", "null"]},
    "created_at": {"type": ["string", "null"], "format": "date-time"},
    "updated_at": {"type": ["string", "null"], "format": "date-time"},
    "date_placed": {"type": ["string", "null"], "format": "date-time"},
    "is_test": {"type": ["boolean", "null"]},
    "requires_shipping": {"type": ["boolean", "null"]},
    "ship_date": {"type": ["string", "null"], "format": "date"},
    "currency": {"type": ["string", "null"]},
    "sku": {"type": ["string", "null"]},
    "product_title": {"type": ["string", "null"]},
    "status": {"type": ["string", "null"]},
    "email": {"type": ["string", "null"]},
}
COLUMNS = list(SCHEMA)
TITLES = [c.replace("_", " ").title() for c in COLUMNS]  # exercise header normalization


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a realistic export: mixed offsets, some empty cells, a few quoted commas."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    offsets = [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TITLES)
        for i in range(rows):
            t = (base + timedelta(seconds=i * 13)).astimezone(rng.choice(offsets))
            stamp = t.isoformat(sep=rng.choice("T "))
            writer.writerow(
                [
                    i + 1,
                    i // 3,
                    rng.randint(1, 9),
                    rng.randint(1, 5000),
                    f"{rng.randint(0, 99999) / 100:.2f}",
                    f"{rng.randint(0, 99999) / 100:.2f}",
                    f"{rng.randint(0, 999) / 100:.2f}",
                    "" if i % 7 else "4.99",
                    "0.00",
                    stamp,
                    stamp,
                    stamp if i % 5 else "",
                    rng.choice(["true", "false"]),
                    rng.choice(["True", "False", ""]),
                    t.date().isoformat(),
                    "USD",
                    f"SKU-{i % 977}",
                    rng.choice(["Widget, large", "Gadget", 'Thing "pro"']),
                    rng.choice(["open", "closed"]),
                    f"user{i % 5000}@example.com",
                ]
            )


def floor_typed_lists(path: Path) -> int:
    """The floor: csv.reader + one converter call per non-empty cell, no records."""
    converters = [csv_converter(SCHEMA[c]) for c in COLUMNS]
    n = 0
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            [(c(v) if c is not None else v) if v else None for c, v in zip(converters, row, strict=False)]
            n += 1
    return n


def floor_typed_dicts(path: Path) -> int:
    """The floor plus building each record with dict(zip(...))."""
    converters = [csv_converter(SCHEMA[c]) for c in COLUMNS]
    n = 0
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            dict(
                zip(
                    COLUMNS,
                    [
                        (c(v) if c is not None else v) if v else None
                        for c, v in zip(converters, row, strict=False)
                    ],
                    strict=False,
                )
            )
            n += 1
    return n


def tap_reader(path: Path, window: WindowFilter | None = None) -> int:
    """CsvFileReader end to end: byte check, header normalization, typing, PK check."""

    def fail(err: Exception) -> None:
        raise err

    n = 0
    with CsvFileReader(
        path,
        {"properties": SCHEMA},
        stream="bench",
        file_label=path.name,
        on_invalid=fail,
        primary_keys=("id",),
        window=window,
    ) as reader:
        for _ in reader:
            n += 1
    return n


def interleaved_best(
    contenders: list[tuple[str, Callable[[], int]]], repeat: int
) -> dict[str, tuple[float, int]]:
    """Best CPU time of each contender, run in turn: other processes on a shared machine
    then distort all contenders alike (and CPU time ignores their time slices)."""
    best: dict[str, tuple[float, int]] = {label: (float("inf"), 0) for label, _ in contenders}
    for _ in range(repeat):
        for label, fn in contenders:
            start = time.process_time()
            n = fn()
            elapsed = time.process_time() - start
            if elapsed < best[label][0]:
                best[label] = (elapsed, n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        generate(path, args.rows)
        size = path.stat().st_size / 1e6
        print(f"{args.rows} rows x {len(COLUMNS)} columns, {size:.1f} MB")
        window = WindowFilter("created_at", "2024-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")
        contenders: list[tuple[str, Callable[[], int]]] = [
            ("(a) floor: csv.reader + typing", lambda: floor_typed_lists(path)),
            ("(a') floor + dict(zip()) records", lambda: floor_typed_dicts(path)),
            ("(b) CsvFileReader", lambda: tap_reader(path)),
            ("(b') CsvFileReader + window", lambda: tap_reader(path, window)),
        ]
        results = interleaved_best(contenders, args.repeat)
        for label, (seconds, n) in results.items():
            print(f"{label:36s} {seconds:6.3f} s  {n / seconds:>10,.0f} rows/s")
        floor = results[contenders[0][0]][0]
        for label, _ in contenders[1:]:
            print(f"ratio {label} / floor: {results[label][0] / floor:.2f}")


if __name__ == "__main__":
    main()
