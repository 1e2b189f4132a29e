"""Run the real tap CLI as a process and read what it emitted (shared by end-to-end tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

UTC = timezone.utc


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass
class TapRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in self.messages:
            if m["type"] == "RECORD":
                out[m["stream"]].append(m["record"])
        return out

    @property
    def schemas(self) -> dict[str, dict[str, Any]]:
        return {m["stream"]: m for m in self.messages if m["type"] == "SCHEMA"}

    @property
    def last_state(self) -> dict[str, Any] | None:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else None

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "tap-commerce-exports: error:" in line]

    def keys(self, stream: str, key_properties: Iterable[str]) -> list[Any]:
        props = list(key_properties)
        return [
            r[props[0]] if len(props) == 1 else tuple(r[k] for k in props)
            for r in self.records.get(stream, [])
        ]


def run_tap(
    config: dict[str, Any],
    *,
    state: dict | None = None,
    streams: Iterable[str] | None = None,
    args: Iterable[str] = (),
    timeout: float = 240,
    env: dict[str, str] | None = None,
) -> TapRun:
    """Run ``python -m tap_commerce_exports`` with this config (and state / stream selection)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        cfg = tmpdir / "config.json"
        cfg.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(cfg), *args]
        if state is not None:
            (tmpdir / "state.json").write_text(json.dumps(state))
            cmd += ["--state", str(tmpdir / "state.json")]
        if streams is not None:
            (tmpdir / "catalog.json").write_text(json.dumps(selected_catalog(config, streams)))
            cmd += ["--catalog", str(tmpdir / "catalog.json")]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=tmp
        )
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stdout.splitlines():
        if line.strip():
            run.messages.append(json.loads(line))
    return run


def selected_catalog(config: dict[str, Any], streams: Iterable[str]) -> dict[str, Any]:
    """The discovered catalog with exactly ``streams`` selected."""
    catalog = discover(config)
    wanted = set(streams)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


#: ``--discover``'s catalog per config (JSON text) in this process. Discovery reads only the
#: config and the tap's own schemas (it calls no API), so the same config gives the same
#: catalog; a tap process start costs about a second of CPU, and most runs of a spec
#: module select streams under one config.
_DISCOVERED: dict[str, str] = {}


def discover(config: dict[str, Any]) -> dict[str, Any]:
    """The tap's ``--discover`` catalog for ``config`` (a fresh copy: callers edit it)."""
    key = json.dumps(config, sort_keys=True)
    if key not in _DISCOVERED:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "config.json"
            cfg.write_text(json.dumps(config))
            proc = subprocess.run(
                [sys.executable, "-m", "tap_commerce_exports", "--config", str(cfg), "--discover"],
                capture_output=True,
                text=True,
                check=True,
            )
        _DISCOVERED[key] = proc.stdout
    result: dict[str, Any] = json.loads(_DISCOVERED[key])
    return result


def assert_records_fit_schemas(run: TapRun) -> None:
    """Every RECORD validates against the latest SCHEMA of its stream emitted before it."""
    schemas: dict[str, Any] = {}
    validators: dict[str, jsonschema.Draft7Validator] = {}
    for m in run.messages:
        if m["type"] == "SCHEMA":
            schemas[m["stream"]] = m["schema"]
            validators[m["stream"]] = jsonschema.Draft7Validator(
                m["schema"], format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
            )
        elif m["type"] == "RECORD":
            errors = list(validators[m["stream"]].iter_errors(m["record"]))
            assert not errors, f"{m['stream']}: {errors[0].message}"


def duplicates(keys: list[Any]) -> dict[Any, int]:
    return {k: n for k, n in Counter(keys).items() if n > 1}
