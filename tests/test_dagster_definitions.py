"""The code location as Dagster loads it (under `.venv-dagster`): assets, partitions, pools, retries."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.meltano_helpers import REPO

pytestmark = pytest.mark.meltano

DAGSTER_PYTHON = REPO / ".venv-dagster" / "bin" / "python"

PROBE = """
import json
from dagster import in_process_executor
from orchestration.definitions import defs
repo = defs.get_repository_def()
out = {}
for a in defs.assets:
    spec = a.get_asset_spec()
    out["/".join(a.key.path)] = {
        "partitions": a.partitions_def.get_partition_keys(),
        "pool": a.op.pool,
        "retries": a.op.retry_policy.max_retries,
    }
out["jobs"] = {j.name: j.executor_def is in_process_executor for j in repo.get_all_jobs() if not j.name.startswith("__")}
out["schedules"] = sorted(s.name for s in repo.schedule_defs)
print("PROBE " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def needs_dagster(require):
    if not DAGSTER_PYTHON.exists():
        require(".venv-dagster is missing: run `make test` (its dagster-venv target creates it)")


def probe(env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [str(DAGSTER_PYTHON), "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1].split(" ", 1)[1])


def test_the_code_location_has_one_partitioned_asset_per_extractor_in_a_pool_with_retries(
    tmp_path, needs_dagster
):
    groups = {
        "extractors": {"tap-commerce-exports--clover": {"concurrent_runs": 2}},
        "groups": {
            g: {"extractor": "tap-commerce-exports--clover", "accounts": [{"merchant_id": m}]}
            for g, m in (("eu-2", "M2"), ("eu-1", "M1"))
        }
        | {"nc-1": {"extractor": "tap-commerce-exports", "accounts": [{"store": "s1"}]}},
    }
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(groups))
    found = probe({"PATH": "/usr/bin:/bin", "COMMERCE_EXPORTS_GROUPS": str(path)})
    assert found["commerce_exports/tap_commerce_exports__clover"] == {
        "partitions": ["eu-1", "eu-2"],
        "pool": "tap-commerce-exports--clover-app",
        "retries": 2,
    }
    assert found["commerce_exports/tap_commerce_exports"]["partitions"] == ["nc-1"]
    assert found["jobs"] == {"sync_tap_commerce_exports": True, "sync_tap_commerce_exports__clover": True}
    assert found["schedules"] == ["tap_commerce_exports__clover_hourly", "tap_commerce_exports_hourly"]


def test_a_broken_groups_file_stops_the_code_location_naming_the_mistake(tmp_path, needs_dagster):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": {"Bad Name": {}}}))
    proc = subprocess.run(
        [str(DAGSTER_PYTHON), "-c", "import orchestration.definitions"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "COMMERCE_EXPORTS_GROUPS": str(path)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "group name 'Bad Name' must be lower-case letters" in proc.stderr
