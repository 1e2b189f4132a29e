"""Run the real Meltano of this repo in isolation (shared by the Meltano end-to-end tests).

Meltano itself lives in `.venv-meltano/` and its plugins under the repo's `.meltano/`
(`make install` puts them there). A test gets its own Meltano "system directory"
(`MELTANO_SYS_DIR_ROOT`) in a temporary folder: its own system database (so its own
state), run and log folders; the plugin virtualenvs are reached through symlinks, so
nothing is installed again and nothing of the user's `.meltano/` (state, logs) changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MELTANO = REPO / ".venv-meltano" / "bin" / "meltano"
PLUGINS_DIR = REPO / ".meltano"
NC_EXTRACTOR = "tap-commerce-exports"
CLOVER_EXTRACTOR = "tap-commerce-exports--clover"

#: Variables of the caller that must not leak into a test's Meltano (real tokens, a
#: user's warehouse path, a user's Meltano settings).
_SCRUBBED_PREFIXES = ("TAP_COMMERCE_EXPORTS", "TARGET_DUCKDB", "TARGET_JSONL", "TARGET_POSTGRES", "MELTANO_")


def missing_install() -> str | None:
    """Why the Meltano tests cannot run here (None if they can)."""
    if not MELTANO.exists():
        return f"{MELTANO.relative_to(REPO)} is missing: run `make test` (it installs Meltano)"
    for plugin in ("extractors/tap-commerce-exports", "loaders/target-duckdb", "loaders/target-postgres"):
        if not (PLUGINS_DIR / plugin / "venv").is_dir():
            return f".meltano/{plugin} is not installed: run `make test` (it runs `meltano install`)"
    return None


def env_prefix(plugin: str) -> str:
    """Meltano's `<PLUGIN_NAME>_` environment prefix of a plugin's settings."""
    return "".join(c if c.isalnum() else "_" for c in plugin).upper() + "_"


def plugin_env(plugin: str, settings: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables that set these settings of this plugin."""
    prefix = env_prefix(plugin)
    out = {}
    for name, value in settings.items():
        out[prefix + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return out


@dataclass
class MeltanoResult:
    args: list[str]
    returncode: int
    output: str

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


class IsolatedMeltano:
    """This repo's Meltano project, with a private system directory under `home`.

    ``fresh_copy=True``: the project is a copy (``home/project``: meltano.yml and the
    links a clone's `make install` leaves, `.venv` and `.venv-meltano`), as a fresh clone
    is, so commands that change meltano.yml or .env (`config set`, `select`, `job add`)
    change only the copy. Its plugins are the installed ones, seen through "shadow"
    venvs (links to every file) whose install fingerprint is the copy's: Meltano 4.4.1
    reinstalls a plugin whose fingerprint differs, whatever `auto_install` says, and
    would rebuild the shared venv from the copy."""

    def __init__(self, home: Path, environment: str = "dev", *, fresh_copy: bool = False) -> None:
        self.home = Path(home)
        self.environment = environment
        self.sys_dir = self.home / "meltano-sys"
        self.sys_dir.mkdir(parents=True, exist_ok=True)
        self.project = REPO
        if fresh_copy:
            self.project = self.home / "project"
            _copy_project(self.project)
            _shadow_plugins(self.sys_dir, self.project)
        else:
            for kind in ("extractors", "loaders"):
                link = self.sys_dir / kind
                if not link.exists():
                    link.symlink_to(PLUGINS_DIR / kind, target_is_directory=True)
        # a copy writes where its meltano.yml says (dev: output/sandbox.duckdb)
        self.warehouse = (
            self.project / "output" / "sandbox.duckdb" if fresh_copy else self.home / "warehouse.duckdb"
        )
        self.fresh_copy = fresh_copy
        self.extra_env: dict[str, str] = {}
        self.runs = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            {
                "MELTANO_SYS_DIR_ROOT": str(self.sys_dir),
                "MELTANO_DATABASE_URI": f"sqlite:///{self.sys_dir / 'meltano.db'}",
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "MELTANO_AUTO_INSTALL": "false",
            }
        )
        if not self.fresh_copy:
            env["TARGET_DUCKDB_PATH"] = str(self.warehouse)
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 600) -> MeltanoResult:
        cmd = [str(MELTANO), f"--environment={self.environment}", *args]
        return self._run(cmd, " ".join(args), timeout)

    def shell(self, line: str, timeout: float = 600) -> MeltanoResult:
        """One command line as a user types it (bash, in the project folder)."""
        return self._run(["bash", "-c", line], line, timeout)

    def _run(self, cmd: list[str], label: str, timeout: float) -> MeltanoResult:
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=self.project,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        self.runs += 1
        log = self.home / f"meltano-{self.runs:02d}.log"
        log.write_text(proc.stdout)
        print(f"meltano {label}: exit {proc.returncode} in {time.monotonic() - started:.1f}s (output: {log})")
        return MeltanoResult(cmd, proc.returncode, proc.stdout)

    def states(self) -> dict[str, dict[str, Any]]:
        """`meltano state export`: {state_id: completed Singer state} of this test's Meltano."""
        cmd = [str(MELTANO), "--log-level=error", "state", "export"]
        proc = subprocess.run(
            cmd,
            cwd=self.project,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        text = proc.stdout.strip()
        exported = json.loads(text) if text else {}
        return {state_id: entry.get("completed") or {} for state_id, entry in exported.items()}


def _copy_project(project: Path) -> None:
    """What a fresh clone holds after `make install`, as far as Meltano's commands go."""
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "meltano.yml", project / "meltano.yml")
    for venv in (".venv", ".venv-meltano"):
        (project / venv).symlink_to(REPO / venv, target_is_directory=True)
    (project / "output").mkdir(exist_ok=True)


def _meltano_fingerprint(pip_url: str, root: Path) -> str:
    """Meltano 4.4.1's install fingerprint (meltano.core.venv_service.fingerprint) of a
    pip_url expanded for project `root`: SHA-256 of the sorted, deduplicated args."""
    args = shlex.split(pip_url.replace("${MELTANO_PROJECT_ROOT}", str(root)))
    return hashlib.sha256(" ".join(sorted(set(args))).encode()).hexdigest()


def _shadow_plugins(sys_dir: Path, project: Path) -> None:
    import yaml

    config = yaml.safe_load((REPO / "meltano.yml").read_text())
    for kind in ("extractors", "loaders"):
        for plugin in config["plugins"][kind]:
            if "pip_url" not in plugin:
                continue  # inherited: shares its parent's venv
            real = PLUGINS_DIR / kind / plugin["name"] / "venv"
            stamp = real / ".meltano_plugin_fingerprint"
            if not stamp.exists():
                continue  # not installed: Meltano says so when a command needs it
            if stamp.read_text().strip() != _meltano_fingerprint(plugin["pip_url"], REPO):
                raise RuntimeError(
                    f"{plugin['name']}: Meltano's install fingerprint is not computed as "
                    "tests/meltano_helpers.py expects (new Meltano?), or the plugin is "
                    "installed from another meltano.yml: run `make install`"
                )
            shadow = sys_dir / kind / plugin["name"] / "venv"
            shadow.mkdir(parents=True)
            for child in real.iterdir():
                if child.name != stamp.name:
                    (shadow / child.name).symlink_to(child)
            (shadow / stamp.name).write_text(_meltano_fingerprint(plugin["pip_url"], project))


def bookmark_values(singer_state: dict[str, Any]) -> dict[str, set[str]]:
    """{stream: replication key values} of a Singer state (partitioned or not)."""
    out: dict[str, set[str]] = {}
    for stream, bookmark in (singer_state.get("bookmarks") or {}).items():
        values = {p.get("replication_key_value") for p in bookmark.get("partitions", [])}
        if "replication_key_value" in bookmark:
            values.add(bookmark["replication_key_value"])
        out[stream] = {v for v in values if v is not None}
    return out


def read_warehouse(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """{(schema, table): {"columns": [...], "key": [...], "rows": n}} of a DuckDB file; the
    key is the table's primary key or, for a table the loader made without one, the key
    its comment names ("key: _account, number (upserted by target-duckdb-exports)")."""
    import duckdb

    if not Path(path).exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for schema, table in con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall():
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            rows = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            out[(schema, table)] = {"columns": cols, "key": [], "rows": rows}
        for schema, table, comment in con.execute(
            "select schema_name, table_name, comment from duckdb_tables()"
        ).fetchall():
            named = re.match(r"key: (.*) \(upserted by target-duckdb-exports\)$", comment or "")
            if named and (schema, table) in out:
                out[(schema, table)]["key"] = named.group(1).split(", ")
        for schema, table, pk in con.execute(
            "select schema_name, table_name, constraint_column_names from duckdb_constraints() "
            "where constraint_type = 'PRIMARY KEY'"
        ).fetchall():
            if (schema, table) in out:
                out[(schema, table)]["key"] = list(pk)
        return out
    finally:
        con.close()


def table_keys(path: Path, schema: str, table: str, key_columns: Iterable[str]) -> list[tuple[str, ...]]:
    """Every row's key as a tuple of strings (duplicates kept, so that they can be counted)."""
    import duckdb

    cols = ", ".join(f'"{c.lower()}"' for c in key_columns)
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            tuple(str(v) for v in row)
            for row in con.execute(f'select {cols} from "{schema}"."{table}"').fetchall()
        ]
    finally:
        con.close()


def as_key_tuples(keys: Iterable[Any]) -> list[tuple[str, ...]]:
    """Ground-truth keys (scalars or tuples) as tuples of strings, like :func:`table_keys`."""
    return [tuple(str(v) for v in k) if isinstance(k, (tuple, list)) else (str(k),) for k in keys]
