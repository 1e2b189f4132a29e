"""End to end through real Meltano in BATCH mode: sandbox -> tap -> BATCH files ->
meltanolabs-target-postgres -> a real PostgreSQL (``scripts/postgres.py``).

A test-only Meltano project in a temporary folder: this repo's meltano.yml, with its
extractor and a PostgreSQL loader pointed at executables already installed (the project's
``.venv`` for the tap; for the loader, the venv ``scripts/bench_loader.py`` builds from
``requirements/bench-target-postgres.txt``). Why not Meltano-installed plugins: the
extractor's pip_url holds ``${MELTANO_PROJECT_ROOT}``, so in another project folder
Meltano would reinstall it into the shared ``.meltano`` venv (measured: it did, and
broke it). Meltano still runs the pipeline: config from the environment as a user's
would, the pipe, the state. Done when the tables equal the sandbox's truth, the state
holds one bookmark per stream, and a rerun adds nothing and removes the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.meltano_helpers import (
    NC_EXTRACTOR,
    REPO,
    IsolatedMeltano,
    as_key_tuples,
    bookmark_values,
    missing_install,
    plugin_env,
)

pytestmark = pytest.mark.meltano

LOADER = "target-postgres-batch"
START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"
STREAMS = ("orders", "customers", "order_line_items")
DEFINITIONS = {d.name: d for d in NEXTCOMMERCE_STREAMS}


def loader_plugin(executable: Path) -> dict:
    """The PostgreSQL loader as the README's BATCH recipe declares it (its executable
    given, instead of a pip_url: see the module docstring)."""
    return {
        "name": LOADER,
        "namespace": "target_postgres",
        "executable": str(executable),
        "settings": [
            {"name": "sqlalchemy_url", "kind": "string", "sensitive": True},
            {"name": "default_target_schema", "kind": "string"},
            {"name": "add_record_metadata", "kind": "boolean"},
            {"name": "activate_version", "kind": "boolean"},
            {"name": "use_copy", "kind": "boolean"},
        ],
        "config": {
            "default_target_schema": "batch",
            "add_record_metadata": False,
            "activate_version": False,
            "use_copy": True,  # COPY: faster on BATCH files (README, "BATCH")
        },
    }


class BatchProject(IsolatedMeltano):
    """IsolatedMeltano, but in a project folder of its own (meltano.yml + the loader)."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.project = home / "project"
        self.project.mkdir()
        sys.path.insert(0, str(REPO / "scripts"))
        from bench_loader import ensure_target

        config = yaml.safe_load((REPO / "meltano.yml").read_text())
        for extractor in config["plugins"]["extractors"]:
            if extractor["name"] == NC_EXTRACTOR:
                extractor.pop("pip_url")
                extractor["executable"] = str(Path(sys.executable).parent / "tap-commerce-exports")
        config["plugins"]["loaders"].append(loader_plugin(ensure_target()))
        (self.project / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def postgres(require):
    sys.path.insert(0, str(REPO / "scripts"))
    from postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.temporary().start()
    except (PostgresUnavailable, subprocess.CalledProcessError) as exc:
        require(f"no PostgreSQL here: {exc}")
    yield server
    server.remove()


@pytest.fixture(scope="module")
def sandbox():
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=50)) as sb:
        yield sb


def test_batch_files_through_meltano_into_postgresql_equal_the_truth_and_a_rerun_adds_nothing(
    tmp_path, postgres, sandbox, require
):
    require(missing_install())
    project = BatchProject(tmp_path)

    batches = tmp_path / "batches"
    project.extra_env = {
        **plugin_env(
            NC_EXTRACTOR,
            {
                "provider": "nextcommerce",
                "api_url": sandbox.api_url,
                "store": "demo-store",
                "access_token": "sandbox-token",
                "start_date": START,
                "end_date": END,
                "window_days": 15,
                "lookback": 0,  # the rerun must read nothing: no re-read of recent windows
                "poll_interval": 1,
                "poll_max_interval": 2,
                "max_requests_per_second": 40,
                "batch_config": {
                    "encoding": {"format": "jsonl", "compression": "gzip"},
                    "storage": {"root": batches.as_uri(), "prefix": "meltano-"},
                    "batch_size": 200,
                },
            },
        ),
        "TAP_COMMERCE_EXPORTS__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
        **plugin_env(LOADER, {"sqlalchemy_url": postgres.url}),
    }

    first = project.run("run", NC_EXTRACTOR, LOADER)
    assert first.returncode == 0, f"meltano run failed:\n{first.tail()}"
    assert "0 records, " in first.output and " batch manifests" in first.output  # BATCH only
    counts = assert_tables_equal_truth(postgres, sandbox)
    assert all(counts[s] > 0 for s in STREAMS)
    (state,) = project.states().values()
    assert bookmark_values(state.get("singer_state", {})) == {s: {END} for s in STREAMS}
    files = sorted(p.name for p in batches.iterdir())
    assert files and all(n.startswith("meltano-") for n in files)

    again = project.run("run", NC_EXTRACTOR, LOADER)
    assert again.returncode == 0, f"meltano rerun failed:\n{again.tail()}"
    assert assert_tables_equal_truth(postgres, sandbox) == counts
    assert list(batches.iterdir()) == []  # the rerun's bookmark proved them loaded


def assert_tables_equal_truth(postgres, sandbox) -> dict[str, int]:
    from tests.tap_harness import utc

    counts = {}
    for name in STREAMS:
        d = DEFINITIONS[name]
        cols = ", ".join(f'"{k}"::text' for k in d.primary_keys)
        got = [tuple(r) for r in postgres.query(f'SELECT {cols} FROM batch."{name}"')]
        expected = as_key_tuples(sandbox.truth_keys("nextcommerce", d.export_type, utc(START), utc(END)))
        dups = [k for k, n in Counter(got).items() if n > 1]
        assert not dups, f"{name}: duplicate keys {dups[:3]}"
        assert sorted(got) == sorted(expected), f"{name}: {len(got)} rows, the sandbox has {len(expected)}"
        counts[name] = len(got)
    return counts
