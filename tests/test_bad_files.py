"""Bad input: damaged export files and wrong settings give clear answers, never silent loss.

Files: the sandbox's ``fault_bad_file`` switch damages the next export file it serves,
one kind at a time (``sandbox/commerce_sandbox/bad_files.py`` says exactly how, and
records the line, byte offset, column, value and key it damaged). Each case syncs one
stream over two one-day windows, one export at a time, so the damaged file is the first
window's.

* A BOM, CRLF or LF line ends, a header with no rows: just work (exit 0, no error). These
  four are served to one run, one window each (``fault_bad_file: "bom,crlf,lf,header_only"``).
* A row that does not fit (ragged, or a value not of its column's type), with
  ``on_invalid_record: fail`` (the default): exit 2 and ONE line naming the stream, the
  file position, the column and the value's type (never the value). With ``log``: the record goes to a rejects
  file in ``rejects_dir`` named in the log, is counted, and every other row is emitted.
* A file that cannot be read at all (invalid UTF-8, NUL bytes, empty, not JSON, no
  ``elements``): exit 2 and one line saying where, whatever ``on_invalid_record`` says;
  the stream's bookmark does not move.

Settings: each mistake is one line naming the setting, exit 2, no traceback (the CLI's
``main`` is called in this process: the same code path without a 2 s process start).

Every tap run here is a separate process (~2 s of start-up each), so the cases run
concurrently (each with its own sandbox) in one module fixture; the tests below read
their outcomes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commerce_sandbox import bad_files
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.tap_harness import TapRun, run_tap, utc
from tests.test_interruption import bookmark_of, write_catalog

pytestmark = pytest.mark.e2e

START, MIDDLE, END = "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"
ORDERS = {
    "nextcommerce": next(d for d in NEXTCOMMERCE_STREAMS if d.name == "orders"),
    "clover": next(d for d in CLOVER_STREAMS if d.name == "orders"),
}


@dataclass(frozen=True)
class Case:
    provider: str
    kind: str
    mode: str = "fail"

    @property
    def name(self) -> str:
        return f"{self.provider}-{self.kind}-{self.mode}"


@dataclass
class Outcome:
    case: Case
    run: TapRun
    damage: bad_files.Damage | None
    truth: list[Any]
    truth_second_window: list[Any]
    rejects_dir: Path
    damages: list[bad_files.Damage] = field(default_factory=list)
    truth_last_window: list[Any] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)

    @property
    def error_line(self) -> str:
        lines = self.run.error_lines()
        assert len(lines) == 1, f"expected one error line, got {lines}\n{self.run.stderr[-2000:]}"
        return lines[0]

    def rejects(self) -> list[dict]:
        files = sorted(self.rejects_dir.glob("*.jsonl"))
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]


CSV_HARMLESS = ("bom", "crlf", "lf", "header_only")  # one run, one window each
HARMLESS_END = "2025-01-05T00:00:00Z"
CASES = [
    Case("nextcommerce", ",".join(CSV_HARMLESS)),
    Case("nextcommerce", "ragged"),
    Case("nextcommerce", "ragged", "log"),
    Case("nextcommerce", "bad_value"),
    Case("nextcommerce", "bad_value", "log"),
    Case("nextcommerce", "invalid_utf8"),
    Case("nextcommerce", "nul"),
    Case("nextcommerce", "empty"),
    Case("clover", "bom"),
    Case("clover", "bad_value"),
    Case("clover", "bad_value", "log"),
    Case("clover", "not_json"),
    Case("clover", "no_elements"),
    Case("clover", "invalid_utf8", "log"),  # an unreadable file fails even with 'log'
    Case("clover", "nul"),
    Case("clover", "empty"),
]

SETTINGS_CASES = {
    "unknown provider": ({"provider": "shopify"}, ["'provider'", "shopify", "clover"]),
    "a date that does not parse": ({"end_date": "31/01/2025"}, ["'end_date'", "31/01/2025"]),
    "end before start": (
        {"start_date": "2025-02-01", "end_date": "2025-01-01"},
        ["'end_date'", "'start_date'"],
    ),
    "a window too large for Clover": ({"provider": "clover", "window_days": 45}, ["'window_days'", "30"]),
    "plain http off loopback": ({"api_url": "http://shop.example.com/api/admin/"}, ["'api_url'", "https"]),
}


def _run_case(case: Case, catalogs: dict[str, Path], root: Path) -> Outcome:
    from commerce_sandbox import SandboxConfig, SandboxServer

    workdir = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=root))
    rejects_dir = workdir / "rejects"
    definition = ORDERS[case.provider]
    end = HARMLESS_END if "," in case.kind else END
    with SandboxServer(
        SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000)
    ) as sb:
        config: dict[str, Any] = {
            "access_token": "sandbox-token",
            "start_date": START,
            "end_date": end,
            "window_days": 1,
            "poll_interval": 0.02,
            "poll_max_interval": 0.1,
            "max_concurrent_exports": 1,
            "max_requests_per_second": 500,
            "export_timeout": 30,
            "on_invalid_record": case.mode,
            "rejects_dir": str(rejects_dir),
        }
        if case.provider == "nextcommerce":
            config.update(provider="nextcommerce", api_url=sb.api_url, store="demo-store")
        else:
            config.update(
                provider="clover", api_url=sb.clover_url, merchant_id="SANDBOXMERCHANT1", region="sandbox"
            )
        sb.control(fault_bad_file=case.kind)
        run = run_tap(config, args=["--catalog", str(catalogs[case.provider])], timeout=120)
        damaged = bad_files.served(sb.state)
        truth = sb.truth_keys(case.provider, definition.export_type, utc(START), utc(end))
        second = sb.truth_keys(case.provider, definition.export_type, utc(MIDDLE), utc(END))
        last = sb.truth_keys(case.provider, definition.export_type, utc(end) - timedelta(days=1), utc(end))
    outcome = Outcome(case, run, damaged[0] if damaged else None, truth, second, rejects_dir, damaged, last)
    outcome.keys = run.keys("orders", definition.primary_keys)
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad-files")
    catalogs = {p: write_catalog({"provider": p}, ["orders"], root / f"catalog-{p}.json") for p in ORDERS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        files = {c.name: pool.submit(_run_case, c, catalogs, root) for c in CASES}
        return {n: f.result() for n, f in files.items()}


def outcome(outcomes, provider: str, kind: str, mode: str = "fail") -> Outcome:
    result = outcomes[Case(provider, kind, mode).name]
    if kind not in ("empty",):
        assert result.damage is not None and result.damage.kind == kind, "the sandbox served the damaged file"
    return result


def assert_exact(result: Outcome, expected: list[Any]) -> None:
    assert sorted(map(str, result.keys)) == sorted(map(str, expected))
    assert len(result.keys) == len(set(map(str, result.keys))), "no duplicates"


def assert_stream_failed_and_bookmark_stayed(result: Outcome) -> None:
    assert result.run.returncode == 2, result.run.stderr[-2000:]
    assert "Traceback" not in result.run.stderr
    assert bookmark_of(result.run.last_state, "orders") is None, "the bookmark does not move"


# ------------------------------------------------------------------ harmless variations


def test_a_bom_crlf_lf_and_a_header_only_file_just_work(outcomes):
    result = outcomes[Case("nextcommerce", ",".join(CSV_HARMLESS)).name]
    assert [d.kind for d in result.damages] == list(CSV_HARMLESS), "one window each, in order"
    assert result.run.returncode == 0, result.run.stderr[-2000:]
    assert not result.run.error_lines()
    assert "ERROR" not in result.run.stderr
    # the fourth window's file had only its header: that window is empty, not an error
    emptied = set(result.truth_last_window)
    assert emptied, "the header-only window had rows in the original file"
    assert_exact(result, [k for k in result.truth if k not in emptied])
    assert bookmark_of(result.run.last_state, "orders") == utc(HARMLESS_END)


def test_a_bom_in_a_json_file_just_works(outcomes):
    result = outcome(outcomes, "clover", "bom")
    assert result.run.returncode == 0, result.run.stderr[-2000:]
    assert not result.run.error_lines()
    assert_exact(result, result.truth)
    assert bookmark_of(result.run.last_state, "orders") == utc(END)


# ------------------------------------------------------------------ one bad row


def test_a_ragged_row_fails_the_stream_with_one_line_naming_stream_and_line_but_not_the_cells(outcomes):
    result = outcome(outcomes, "nextcommerce", "ragged")
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "stream 'orders'" in line
    assert f"file 1 line {result.damage.line}:" in line
    assert "cells but the header has" in line
    assert str(result.damage.key) not in line, "the row's cells are customers' data: rejects file only"
    assert "value: a list of" in line


def test_a_value_that_does_not_fit_its_column_names_stream_position_column_and_type_not_value_csv(outcomes):
    result = outcome(outcomes, "nextcommerce", "bad_value")
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "stream 'orders'" in line
    assert f"line {result.damage.line}" in line
    assert f"column '{result.damage.column}'" in line
    assert bad_files.BAD_NUMBER not in line, "values go to the rejects file only"
    assert f"value: a string of {len(bad_files.BAD_NUMBER)} character(s)" in line


def test_a_value_that_does_not_fit_its_field_names_stream_element_field_and_type_not_value_json(outcomes):
    result = outcome(outcomes, "clover", "bad_value")
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "stream 'orders'" in line
    assert f"element {result.damage.line}" in line
    assert f"column '{result.damage.column}'" in line
    assert bad_files.BAD_NUMBER not in line, "values go to the rejects file only"
    assert f"value: a string of {len(bad_files.BAD_NUMBER)} character(s)" in line


@pytest.mark.parametrize(
    "provider, kind", [("nextcommerce", "ragged"), ("nextcommerce", "bad_value"), ("clover", "bad_value")]
)
def test_with_on_invalid_record_log_the_row_goes_to_a_named_rejects_file_and_the_rest_is_emitted(
    outcomes, provider, kind
):
    result = outcome(outcomes, provider, kind, "log")
    assert result.run.returncode == 0, result.run.stderr[-2000:]
    assert not result.run.error_lines()
    damaged_key = result.damage.key
    assert damaged_key in result.truth
    assert_exact(result, [k for k in result.truth if k != damaged_key])
    (reject,) = result.rejects()
    assert reject["stream"] == "orders"
    position = f"line {result.damage.line}" if provider == "nextcommerce" else f"element {result.damage.line}"
    assert reject["position"] == position
    if kind == "bad_value":
        assert reject["column"] == result.damage.column
        assert reject["value"] == bad_files.BAD_NUMBER
    else:
        assert reject["value"] == result.damage.value
    (path,) = result.rejects_dir.glob("*.jsonl")
    assert str(path) in result.run.stderr, "the log names the rejects file"
    assert "1 invalid record(s) rejected" in result.run.stderr, "and counts what went there"
    assert bookmark_of(result.run.last_state, "orders") == utc(END)


# ------------------------------------------------------------------ unreadable files


def test_invalid_utf8_in_a_csv_names_the_byte_offset_and_line(outcomes):
    result = outcome(outcomes, "nextcommerce", "invalid_utf8")
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "stream 'orders'" in line and "not valid UTF-8" in line
    assert f"byte offset {result.damage.byte_offset} (line {result.damage.line})" in line
    assert not result.keys, "a broken file yields no half of its rows"


def test_a_nul_byte_in_a_csv_names_the_byte_offset_and_line(outcomes):
    result = outcome(outcomes, "nextcommerce", "nul")
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "NUL byte" in line
    assert f"byte offset {result.damage.byte_offset} (line {result.damage.line})" in line


def test_an_empty_csv_file_is_an_error_not_an_empty_window(outcomes):
    result = outcomes[Case("nextcommerce", "empty").name]
    assert result.damage is not None and result.damage.kind == "empty"
    assert_stream_failed_and_bookmark_stayed(result)
    assert "empty file" in result.error_line


@pytest.mark.parametrize(
    "kind, mode, words",
    [
        ("not_json", "fail", ["not valid JSON"]),
        ("no_elements", "fail", ["no 'elements' list"]),
        ("invalid_utf8", "log", ["not valid UTF-8 at byte offset"]),  # unreadable: fails even with 'log'
        ("nul", "fail", ["not valid JSON", "NUL byte"]),
        ("empty", "fail", ["not valid JSON"]),
    ],
)
def test_a_clover_file_that_is_not_an_elements_document_fails_the_stream_clearly(outcomes, kind, mode, words):
    result = outcomes[Case("clover", kind, mode).name]
    assert result.damage is not None and result.damage.kind == kind
    assert_stream_failed_and_bookmark_stayed(result)
    line = result.error_line
    assert "stream 'orders'" in line and "file 1" in line
    for word in words:
        assert word in line
    if kind == "nul":
        assert f"byte offset {result.damage.byte_offset}" in line
    assert not result.keys


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("name", list(SETTINGS_CASES))
def test_a_wrong_setting_is_one_line_naming_it_exit_2_no_traceback(name, tmp_path, capsys):
    from tap_commerce_exports.cli import main

    overrides, words = SETTINGS_CASES[name]
    config = {
        "provider": "nextcommerce",
        "access_token": "sandbox-token",
        "store": "demo-store",
        "start_date": START,
        "end_date": END,
        **overrides,
    }
    if config["provider"] == "clover":
        config.update(merchant_id="M1", region="sandbox")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    handlers = logging.getLogger().handlers[:]
    try:
        with pytest.raises(SystemExit) as exited:
            main(["--config", str(path)])
    finally:
        logging.getLogger().handlers[:] = handlers  # the SDK adds a console handler per run
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if "tap-commerce-exports: error:" in ln]
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert not out, "nothing is emitted"
    assert "sandbox-token" not in err
