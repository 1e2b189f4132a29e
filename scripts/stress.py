"""make stress: the suite (or a part of it) and the race specs, with CPU hogs beside them.

Why: a spec that passes alone and fails one time in eight on a busy machine is a spec
that depends on thread timing; two busy processes beside the run (what other work does
on a CI runner or a laptop) bring that out. This script

1. starts ``--hogs`` processes that spin (``python -c 'while True: pass'``), and ends
   exactly those when it stops;
2. runs every spec marked ``race`` (``pytest -m race``) ``--runs`` times in one process
   (``--repeat``, tests/repeat.py) and prints the counts;
3. unless ``--races-only``, runs the suite (or the pytest arguments given after ``--``)
   with ``-n 2``, and prints its wall time and summary.

    make stress                               # races x50, then the whole suite
    make stress ARGS="--runs 200 --races-only"
    make stress ARGS="-- tests/test_orchestrator.py tests/test_engine_accounts.py"

The exit code is pytest's first non-zero one (0: everything passed).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SUMMARY = re.compile(r"(\d+ (?:passed|failed|errors?|skipped)[^=]*?) in ([0-9.]+)s")


@contextmanager
def hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` spinning processes for the duration; only these are ended after."""
    procs = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def pytest(args: Sequence[str]) -> tuple[int, str, float]:
    """Run pytest in the repository; return (exit code, summary line, wall seconds)."""
    started = time.monotonic()
    proc = subprocess.run(
        [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    tail = proc.stdout.strip().splitlines()[-60:]
    summary = next((m.group(1) for line in reversed(tail) if (m := SUMMARY.search(line))), "")
    if proc.returncode not in (0, 5):
        print("\n".join(line for line in tail if line.startswith(("FAILED", "ERROR"))))
    return proc.returncode, summary or f"(no summary: exit {proc.returncode})", wall


def race_specs() -> list[str]:
    """The node ids of the specs marked ``race`` (collected once, without repeats, so the
    repeated run collects only their modules)."""
    proc = subprocess.run(
        [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "race"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    # a parametrized spec by its function (its ids change with --repeat's parameter)
    specs = list(dict.fromkeys(line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line))
    if not specs:
        raise SystemExit(f"stress: no spec marked 'race' collected:\n{proc.stdout[-2000:]}")
    return specs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of each race spec (default 50)")
    parser.add_argument("--hogs", type=int, default=2, help="CPU hogs beside the runs (default 2)")
    parser.add_argument("--races-only", action="store_true", help="skip the suite run")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers for the suite run")
    parser.add_argument("suite", nargs="*", help="pytest arguments of the suite run (after --)")
    args = parser.parse_args(argv)

    codes = []
    with hogs(args.hogs):
        print(f"stress: {args.hogs} CPU hog(s) running beside the tests")
        specs = race_specs()
        code, summary, wall = pytest(["-n", "0", "-q", "--repeat", str(args.runs), *specs])
        print(f"race specs x{args.runs}: {summary} ({wall:.0f} s)")
        codes.append(code)
        if not args.races_only:
            code, summary, wall = pytest(["-n", args.workers, "-q", *args.suite])
            what = " ".join(args.suite) or "the whole suite"
            print(f"{what} (-n {args.workers}): {summary}; wall {wall:.0f} s")
            codes.append(code)
    return next((c for c in codes if c not in (0, 5)), 0)


if __name__ == "__main__":
    sys.exit(main())
