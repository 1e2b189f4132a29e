"""The Dagster code location: one partitioned asset per extractor, one partition per group.

    dagster dev -m orchestration.definitions            # with COMMERCE_EXPORTS_GROUPS=<file>

Each partition of `commerce_exports/<extractor>` is one `meltano run <extractor> <loader>
--state-id-suffix <group>`: the group's accounts in its environment
(:mod:`orchestration.partition_env`), its own state id in the shared state backend
(Meltano's system database, e.g. PostgreSQL, named by `MELTANO_DATABASE_URI`). The
asset's pool (`<extractor>-app`, limit = the extractor's `concurrent_runs`, applied with
:mod:`orchestration.pools`) keeps the app-wide API limits across runs and machines; each
run gets its share of them as settings. A failed partition is retried (RetryPolicy); a
backfill is a Dagster backfill of the asset's partitions; the schedule asks for every
partition each hour (stopped until turned on).
"""

import os
import re
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Backoff,
    ConfigurableResource,
    DefaultScheduleStatus,
    Definitions,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    in_process_executor,
    schedule,
)

from orchestration.groups import ExtractorPlan, Group, GroupsConfig, load_groups
from orchestration.meltano_cli import Meltano, RunOutcome, state_id
from orchestration.partition_env import env_prefix, partition_env

REPO = Path(__file__).resolve().parents[1]
#: The groups file the code location loads (its partitions); an example runs against the sandbox.
GROUPS_FILE_ENV = "COMMERCE_EXPORTS_GROUPS"
DEFAULT_GROUPS_FILE = Path(__file__).with_name("groups.example.json")
ASSET_PREFIX = "commerce_exports"

#: A failed partition runs again twice, 1 then 2 minutes later (+-50%): long enough for a
#: 429/503 spell or a restarted pod, short enough to land inside the same export hours.
DEFAULT_RETRY = RetryPolicy(max_retries=2, delay=60, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def _default_meltano_bin() -> str:
    local = REPO / ".venv-dagster" / "bin" / "meltano"
    return os.environ.get("MELTANO_BIN") or (str(local) if local.exists() else "meltano")


class MeltanoProject(ConfigurableResource):  # type: ignore[misc]
    """The Meltano project every partition runs in (the same on every machine: an image)."""

    project_dir: str = str(REPO)
    meltano_bin: str = ""  # "" = .venv-dagster's meltano if present, else `meltano` on PATH
    environment: str = "dev"
    loader: str = "target-duckdb"
    #: target-duckdb only: each group writes <duckdb_dir>/<group>.duckdb, since a DuckDB
    #: file has one writer at a time; a shared warehouse (target-postgres) needs none.
    duckdb_dir: str = ""
    #: variables of this process a run gets beyond the allow-list of orchestration/run_isolation.py
    #: (names, or `PREFIX*`), e.g. ["AWS_*"] for an S3 state backend
    pass_env: list[str] = []

    def cli(self) -> Meltano:
        return Meltano(
            Path(self.project_dir),
            self.meltano_bin or _default_meltano_bin(),
            self.environment,
            pass_env=tuple(self.pass_env),
        )

    def state_id(self, group: Group) -> str:
        return state_id(self.environment, group.extractor, self.loader, group.name)

    def sync(self, group: Group, plan: ExtractorPlan, context: AssetExecutionContext) -> RunOutcome:
        cli = self.cli()
        env = partition_env(group, plan)
        if self.duckdb_dir:
            Path(self.duckdb_dir).mkdir(parents=True, exist_ok=True)
            env[env_prefix(self.loader) + "PATH"] = str(Path(self.duckdb_dir) / f"{group.name}.duckdb")
        args = ["run", group.extractor, self.loader, "--state-id-suffix", group.name]
        context.log.info(
            f"group {group.name}: {len(group.accounts)} account(s), state id {self.state_id(group)}"
        )
        return cli.run_group(
            group.name, args, env, on_line=context.log.debug, plugins=(group.extractor, self.loader)
        )


def tap_error(lines: tuple[str, ...], extractor: str) -> str | None:
    """The tap's own error line (ours: it names the setting to fix) among Meltano's output."""
    marker = f"] {extractor} "
    for line in reversed(lines):
        if "[error" in line and marker in line:
            return line.split(marker, 1)[1].strip()
    return None


def asset_name(extractor: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", extractor)


def extractor_asset(plan: ExtractorPlan, groups: list[Group], retry: RetryPolicy) -> AssetsDefinition:
    by_name = {g.name: g for g in groups}

    @asset(
        name=asset_name(plan.extractor),
        key_prefix=[ASSET_PREFIX],
        partitions_def=StaticPartitionsDefinition(sorted(by_name)),
        pool=plan.pool,
        retry_policy=retry,
        kinds={"meltano"},
        group_name=ASSET_PREFIX,
        description=f"`meltano run {plan.extractor} <loader> --state-id-suffix <group>`, one group per partition.",
    )
    def _sync(context: AssetExecutionContext, meltano: MeltanoProject) -> MaterializeResult:
        group = by_name[context.partition_key]
        outcome = meltano.sync(group, plan, context)
        metadata = {
            "state_id": meltano.state_id(group),
            "accounts": len(group.accounts),
            "seconds": round(outcome.seconds, 3),
            "started_at": outcome.started,
            "ended_at": outcome.ended,
        }
        if outcome.returncode != 0:
            said = tap_error(outcome.last_lines, group.extractor)
            raise Failure(
                description=(
                    f"group {group.name}: meltano run exited with code {outcome.returncode} "
                    f"after {outcome.seconds:.0f}s"
                    + (f"; the tap said: {said}" if said else "; its last lines are in this step's logs")
                ),
                metadata={**metadata, "meltano_tail": MetadataValue.md("\n".join(outcome.last_lines))},
            )
        return MaterializeResult(metadata=metadata)

    return _sync


def hourly_schedule(job_name: str, groups: list[Group], name: str) -> ScheduleDefinition:
    @schedule(
        job_name=job_name, cron_schedule="0 * * * *", name=name, default_status=DefaultScheduleStatus.STOPPED
    )
    def _every_group(context: ScheduleEvaluationContext) -> list[RunRequest]:
        when = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        return [RunRequest(partition_key=g.name, run_key=f"{g.name}@{when}") for g in groups]

    return _every_group


def job_name(extractor: str) -> str:
    return f"sync_{asset_name(extractor)}"


def build_definitions(
    config: GroupsConfig, meltano: MeltanoProject | None = None, retry: RetryPolicy = DEFAULT_RETRY
) -> Definitions:
    assets, jobs, schedules = [], [], []
    for extractor, plan in sorted(config.extractors.items()):
        groups = config.of_extractor(extractor)
        if not groups:
            continue
        asset_def = extractor_asset(plan, groups, retry)
        assets.append(asset_def)
        # one step per run (a partition), so the in-process executor: no subprocess per step
        jobs.append(
            define_asset_job(job_name(extractor), selection=[asset_def.key], executor_def=in_process_executor)
        )
        schedules.append(hourly_schedule(job_name(extractor), groups, f"{asset_name(extractor)}_hourly"))
    return Definitions(
        assets=assets, jobs=jobs, schedules=schedules, resources={"meltano": meltano or MeltanoProject()}
    )


defs = build_definitions(load_groups(os.environ.get(GROUPS_FILE_ENV) or DEFAULT_GROUPS_FILE))
