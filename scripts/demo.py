#!/usr/bin/env python3
"""`make demo`: both providers through real Meltano into DuckDB, then a table of rows.

Sandbox mode (the default): starts the sandbox API emulator
(`tap-commerce-exports-sandbox`), runs, in Meltano's `dev` environment,

    meltano run tap-commerce-exports target-duckdb            # Next Commerce -> schema nextcommerce
    meltano run tap-commerce-exports--clover target-duckdb    # Clover        -> schema clover

into output/sandbox.duckdb (Meltano's `target-duckdb` is this repository's loader,
`loader/`, on the current DuckDB), prints rows per warehouse table (and how many this run
added), and stops the sandbox, also on failure or Ctrl-C. Meltano keeps the bookmarks
(state ids `dev:tap-commerce-exports-to-target-duckdb`, ...), so a second `make demo`
loads nothing twice.

Real mode: if TAP_COMMERCE_EXPORTS_ACCESS_TOKEN (Next Commerce) and/or
TAP_COMMERCE_EXPORTS__CLOVER_ACCESS_TOKEN (Clover) is set, no sandbox is started; the
extractors whose token is set run in Meltano's `prod` environment against the real APIs
(their other settings from the same TAP_COMMERCE_EXPORTS_* / TAP_COMMERCE_EXPORTS__CLOVER_*
variables, `.env` or `meltano config`), into output/warehouse.duckdb.

Options: --port N (sandbox port, default 8000), --processing-delay S (sandbox seconds per
export, default 2), --verbose (stream Meltano's log instead of writing it to output/logs/).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
OUTPUT = ROOT / "output"
LOGS = OUTPUT / "logs"


@dataclass(frozen=True)
class Pipeline:
    title: str
    extractor: str
    schema: str
    url_env: str  # env var that points this extractor at another sandbox port
    url_path: str


PIPELINES = (
    Pipeline(
        "Next Commerce", "tap-commerce-exports", "nextcommerce", "TAP_COMMERCE_EXPORTS_API_URL", "/api/admin/"
    ),
    Pipeline("Clover", "tap-commerce-exports--clover", "clover", "TAP_COMMERCE_EXPORTS__CLOVER_API_URL", ""),
)


class DemoError(Exception):
    """A problem the demo explains in one line."""


class Stopped(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so that the sandbox is stopped."""


def _raise_stopped(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


# ----------------------------------------------------------------------------- sandbox


def _sandbox_executable() -> Path:
    for candidate in (
        Path(sys.executable).parent / "tap-commerce-exports-sandbox",
        ROOT / ".venv" / "bin" / "tap-commerce-exports-sandbox",
    ):
        if candidate.exists():
            return candidate
    raise DemoError("tap-commerce-exports-sandbox is not installed: run `make demo` (it installs it)")


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Sandbox:
    """The sandbox as a child in its own session, so that it is always ours to stop."""

    def __init__(self, port: int, processing_delay: float) -> None:
        self.port = port
        self.processing_delay = processing_delay
        self.proc: subprocess.Popen | None = None
        self.log_path = LOGS / "sandbox.log"

    def start(self, timeout: float = 60.0) -> None:
        if _port_busy(self.port):
            raise DemoError(
                f"port {self.port} is already in use (a `make sandbox` still running?): "
                f"stop it, or run `make demo SANDBOX_PORT=<free port>`"
            )
        LOGS.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(_sandbox_executable()),
            "--port",
            str(self.port),
            "--processing-delay",
            f"{self.processing_delay:g}",
        ]
        print(f"sandbox: starting on 127.0.0.1:{self.port} (log {self._rel(self.log_path)})", flush=True)
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        stats = f"http://127.0.0.1:{self.port}/_sandbox/stats"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(
                    f"the sandbox exited with code {self.proc.returncode} before "
                    f"it was ready:\n{self._tail()}"
                )
            if "sandbox listening:" in self.log_path.read_text(errors="replace"):
                return
            try:
                with urllib.request.urlopen(stats, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise DemoError(f"the sandbox did not answer {stats} within {timeout:g}s:\n{self._tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        _stop_group(proc, grace=10.0)
        print(f"sandbox: stopped (exit code {proc.returncode})", flush=True)

    def _tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no sandbox log)"
        return "\n".join("    " + line for line in text[-lines:])

    @staticmethod
    def _rel(path: Path) -> str:
        return _show(path)


def _stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            # the leader is gone; make sure nothing it started lingers in its group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        except subprocess.TimeoutExpired:
            continue


def _show(path: Path) -> str:
    """A path as the user would type it: relative when it is under the current folder."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- meltano


def run_meltano(
    pipeline: Pipeline, environment: str, env: dict[str, str], verbose: bool
) -> tuple[bool, float, Path]:
    """`meltano run <extractor> target-duckdb`; True when it succeeded."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{pipeline.extractor}.log"
    cmd = [str(MELTANO), f"--environment={environment}", "run", pipeline.extractor, "target-duckdb"]
    print(
        f"{pipeline.title}: meltano --environment={environment} run {pipeline.extractor} target-duckdb ...",
        flush=True,
    )
    started = time.monotonic()
    out = None if verbose else open(log_path, "wb")
    try:
        # Its own session: Ctrl-C reaches us, and we stop Meltano and its plugins together.
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        try:
            rc = proc.wait()
        except BaseException:
            _stop_group(proc, grace=15.0)
            raise
    finally:
        if out is not None:
            out.close()
    elapsed = time.monotonic() - started
    ok = rc == 0
    where = "" if verbose else f" (log {_show(log_path)})"
    print(
        f"{pipeline.title}: {'done' if ok else f'FAILED, exit code {rc}'} in {elapsed:.1f}s{where}",
        flush=True,
    )
    if not ok and not verbose:
        lines = log_path.read_text(errors="replace").splitlines()
        print("\n".join("    " + line for line in lines[-25:]), flush=True)
    return ok, elapsed, log_path


# ----------------------------------------------------------------------------- warehouse


def warehouse_counts(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """{(schema, table): (rows, duplicate primary keys)}; empty if there is no file yet."""
    if not path.exists():
        return {}
    import duckdb  # the project's [dev] extra

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        keys: dict[tuple[str, str], list[str]] = {}
        for schema, table, cols in con.execute(
            "select schema_name, table_name, constraint_column_names from duckdb_constraints() "
            "where constraint_type = 'PRIMARY KEY'"
        ).fetchall():
            keys[(schema, table)] = list(cols)
        result = {}
        for schema, table in tables:
            qualified = f'"{schema}"."{table}"'
            rows = con.execute(f"select count(*) from {qualified}").fetchone()[0]
            dups = 0
            if keys.get((schema, table)):
                cols = ", ".join(f'"{c}"' for c in keys[(schema, table)])
                distinct = con.execute(
                    f"select count(*) from (select distinct {cols} from {qualified})"
                ).fetchone()[0]
                dups = rows - distinct
            result[(schema, table)] = (rows, dups)
        return result
    finally:
        con.close()


def print_table(path: Path, before: dict, after: dict) -> None:
    rel = _show(path)
    if not after:
        print(f"\nwarehouse {rel}: no table yet")
        return
    header = ("table", "rows", "added this run", "duplicate keys")
    body = []
    for key in sorted(after):
        rows, dups = after[key]
        body.append((f"{key[0]}.{key[1]}", str(rows), str(rows - before.get(key, (0, 0))[0]), str(dups)))
    total = sum(r for r, _ in after.values())
    added = total - sum(r for r, _ in before.values())
    dups = sum(d for _, d in after.values())
    body.append(("TOTAL", str(total), str(added), str(dups)))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]

    def line(row):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))

    print(f"\nwarehouse {rel}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in body[:-1]:
        print(line(row))
    print("  ".join("-" * w for w in widths))
    print(line(body[-1]))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT") or 8000))
    parser.add_argument("--processing-delay", type=float, default=2.0)
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGHUP, _raise_stopped)

    if not MELTANO.exists():
        print("demo: Meltano is not installed: run `make demo`", file=sys.stderr)
        return 2

    env = dict(os.environ)
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    nc_token = env.get("TAP_COMMERCE_EXPORTS_ACCESS_TOKEN")
    clover_token = env.get("TAP_COMMERCE_EXPORTS__CLOVER_ACCESS_TOKEN") or env.get(
        "TAP_COMMERCE_EXPORTS_CLOVER_ACCESS_TOKEN"
    )
    real = bool(nc_token or clover_token)
    if real:
        environment = "prod"
        pipelines = [p for p, token in zip(PIPELINES, (nc_token, clover_token), strict=False) if token]
        warehouse = Path(env.get("TARGET_DUCKDB_PATH") or OUTPUT / "warehouse.duckdb")
        print(
            "demo: real credentials found, no sandbox: running "
            + ", ".join(p.title for p in pipelines)
            + " against the real API(s)"
        )
    else:
        environment = "dev"
        pipelines = list(PIPELINES)
        warehouse = Path(env.get("TARGET_DUCKDB_PATH") or OUTPUT / "sandbox.duckdb")
        if args.port != 8000:  # meltano.yml's dev environment says 8000
            for p in pipelines:
                env[p.url_env] = f"http://127.0.0.1:{args.port}{p.url_path}"
    OUTPUT.mkdir(parents=True, exist_ok=True)

    sandbox = None if real else Sandbox(args.port, args.processing_delay)
    failed: list[str] = []
    started = time.monotonic()
    try:
        before = warehouse_counts(warehouse)
        if sandbox:
            sandbox.start()
        for p in pipelines:
            ok, _, _ = run_meltano(p, environment, env, args.verbose)
            if not ok:
                failed.append(p.title)
        if sandbox:
            sandbox.stop()
        print_table(warehouse, before, warehouse_counts(warehouse))
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stopped) as exc:
        print(f"\ndemo: interrupted ({str(exc) or 'Ctrl-C'}), stopping", file=sys.stderr)
        return 130
    finally:
        if sandbox:
            sandbox.stop()
    print(
        f"\ndemo: {'FAILED: ' + ', '.join(failed) if failed else 'ok'} "
        f"in {time.monotonic() - started:.1f}s; state: "
        + ", ".join(f"{environment}:{p.extractor}-to-target-duckdb" for p in pipelines)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
