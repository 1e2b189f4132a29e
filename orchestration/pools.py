"""Set each extractor's Dagster pool limit from the groups file (its `concurrent_runs`).

    python -m orchestration.pools                       # COMMERCE_EXPORTS_GROUPS, DAGSTER_HOME

Same as `dagster instance concurrency set <extractor>-app <n>` per extractor; run it at
deploy time (the limit lives in the Dagster instance, not in the code location). A pool
with no limit set is unlimited, which would let every group of an app run at once.
"""

from __future__ import annotations

import os
import sys

from dagster import DagsterInstance

from orchestration.groups import GroupsConfig, GroupsFileError, load_groups


def apply_pool_limits(instance: DagsterInstance, config: GroupsConfig) -> dict[str, int]:
    limits = {plan.pool: plan.concurrent_runs for plan in config.extractors.values()}
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits


def main() -> int:
    from orchestration.definitions import DEFAULT_GROUPS_FILE, GROUPS_FILE_ENV

    try:
        config = load_groups(os.environ.get(GROUPS_FILE_ENV) or DEFAULT_GROUPS_FILE)
    except GroupsFileError as exc:
        print(f"pools: {exc}", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        for pool, limit in apply_pool_limits(instance, config).items():
            print(f"pools: {pool} runs at most {limit} at once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
