"""One Dagster run of the code location, in this process, reported as one JSON line.

Runs under `.venv-dagster/bin/python` (Dagster is not in the test venv), started by
tests/test_dagster_e2e.py, one process per partition, all at once, on one persistent
Dagster instance (its storage on the test's PostgreSQL), as a deployment's run launcher starts
one process (or pod) per run:

    python tests/dagster_driver.py pools '<spec>'              # pool limits from the groups file
    python tests/dagster_driver.py run '<spec>' <job> <partition>

Each run executes with the job's in-process executor (`execute_in_process`). Two runs in
threads of one process were tried first: with Dagster 1.13 such a process sometimes
stopped silently (exit 0, no result) or hung, so runs are processes, as in production.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterInstance, RetryPolicy  # noqa: E402

from orchestration.definitions import MeltanoProject, build_definitions  # noqa: E402
from orchestration.groups import load_groups  # noqa: E402
from orchestration.pools import apply_pool_limits  # noqa: E402


def _messages(error) -> str:
    """The chain of an error's messages (a retry wrapper's, then the step's own Failure)."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return " <- ".join(parts)


def instance_at(home: str, storage_url: str | None = None) -> DagsterInstance:
    """The Dagster instance every run of the test shares: its storage on PostgreSQL when
    ``storage_url`` is given (as a deployment has it: pools are claimed there)."""
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        storage = (
            f"storage:\n  postgres:\n    postgres_url: {json.dumps(storage_url)}\n" if storage_url else ""
        )
        config.write_text(storage + "telemetry:\n  enabled: false\n")
    return DagsterInstance.from_config(str(path))


def pools(spec: dict) -> dict:
    with instance_at(spec["dagster_home"], spec.get("storage_url")) as instance:
        return apply_pool_limits(instance, load_groups(spec["groups_file"]))


def run(spec: dict, job: str, partition: str) -> dict:
    config = load_groups(spec["groups_file"])
    meltano = MeltanoProject(duckdb_dir=spec["duckdb_dir"], environment=spec.get("environment", "dev"))
    # no retry: a failure must show in the test, not be hidden by a second attempt
    defs = build_definitions(config, meltano, retry=RetryPolicy(max_retries=0))
    with instance_at(spec["dagster_home"], spec.get("storage_url")) as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False
        )
        out: dict = {"success": result.success, "partition": partition}
        for event in result.get_asset_materialization_events():
            md = event.materialization.metadata
            out.update({k: md[k].value for k in ("started_at", "ended_at", "seconds", "state_id") if k in md})
        if not result.success:
            out["failure"] = [
                _messages(e.event_specific_data.error) for e in result.all_events if e.is_step_failure
            ]
        return out


if __name__ == "__main__":
    action, spec = sys.argv[1], json.loads(sys.argv[2])
    report = pools(spec) if action == "pools" else run(spec, *sys.argv[3:5])
    print("DRIVER-RESULT " + json.dumps(report), flush=True)
