"""The orchestration's own logic, without Dagster: groups file, env per partition, budgets, regroup.

These modules are plain Python (Dagster is only in `.venv-dagster`), so they are specified
here in the test venv; tests/test_dagster_e2e.py runs them for real under Dagster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration.groups import ExtractorPlan, GroupsFileError, load_groups, parse_groups
from orchestration.meltano_cli import Meltano, state_id
from orchestration.partition_env import accounts_env, partition_env
from orchestration.regroup import RegroupError, main, move_account

CLOVER = "tap-commerce-exports--clover"


def groups(**groups):
    return {"groups": groups}


def one(merchant, **extra):
    return {"extractor": CLOVER, "accounts": [{"merchant_id": merchant, **extra}]}


#: the prefix every `<setting>_env` of the Clover extractor's accounts must start with
TOKENS = {"extractors": {CLOVER: {"secret_env_prefix": "TOKEN_"}}}


def test_a_group_is_a_partition_of_its_extractor_and_names_its_accounts():
    config = parse_groups(groups(a=one("M1"), b=one("M2")))
    assert [g.name for g in config.of_extractor(CLOVER)] == ["a", "b"]
    assert config.group_of_account("M2").name == "b"
    assert config.extractors[CLOVER] == ExtractorPlan(CLOVER)  # one run at a time unless said


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({}, 'non-empty "groups"'),
        (groups(**{"Bad Name": one("M1")}), "lower-case letters"),
        (groups(a={"accounts": [{"merchant_id": "M1"}]}), 'needs an "extractor"'),
        (groups(a={"extractor": CLOVER, "accounts": []}), "non-empty list"),
        (groups(a=one("M1"), b=one("M1")), "account M1 is in groups a and b"),
        (groups(a={"extractor": CLOVER, "accounts": [{"region": "us"}]}), "needs one of store, merchant_id"),
        ({**groups(a=one("M1")), "extractors": {CLOVER: {"concurrent_runs": 0}}}, "concurrent_runs"),
        ({**groups(a=one("M1")), "extractors": {CLOVER: {"app_limits": {"x": -1}}}}, "positive numbers"),
    ],
)
def test_a_groups_file_mistake_is_one_line_that_says_what_to_fix(raw, says):
    with pytest.raises(GroupsFileError, match=says) as caught:
        parse_groups(raw)
    assert "\n" not in str(caught.value)


def test_a_groups_file_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "groups.json"
    path.write_text('{"groups":\n  {,}}')
    with pytest.raises(GroupsFileError, match="is not JSON \\(line 2\\)"):
        load_groups(path)


def test_each_run_gets_an_equal_share_of_the_app_limits_so_concurrent_runs_stay_within_them():
    plan = ExtractorPlan(CLOVER, concurrent_runs=3, app_limits={"max_requests_per_second": 50.0,
                                                                "max_concurrent_exports": 10.0})  # fmt: skip
    shares = plan.run_settings()
    assert shares == {"max_requests_per_second": "16", "max_concurrent_exports": "3"}
    assert all(int(v) * plan.concurrent_runs <= plan.app_limits[k] for k, v in shares.items())
    assert plan.pool == f"{CLOVER}-app"
    # never 0: a share below one still lets each run make progress
    assert ExtractorPlan(CLOVER, 4, {"max_concurrent_exports": 2.0}).run_settings() == {
        "max_concurrent_exports": "1"
    }


def test_a_partitions_accounts_reach_the_tap_as_its_accounts_setting_with_tokens_from_the_environment():
    config = parse_groups({**TOKENS, **groups(a=one("M1", access_token_env="TOKEN_M1", region="eu"))})
    plan = ExtractorPlan(CLOVER, 2, {"app_max_requests_per_second": 50.0})
    env = partition_env(config.groups["a"], plan, environ={"TOKEN_M1": "secret-1"})
    assert env == {
        "TAP_COMMERCE_EXPORTS__CLOVER_ACCOUNTS": json.dumps(
            [{"merchant_id": "M1", "access_token": "secret-1", "region": "eu"}]
        ),
        "TAP_COMMERCE_EXPORTS__CLOVER_APP_MAX_REQUESTS_PER_SECOND": "25",
    }


def test_a_missing_token_variable_is_named_without_any_value():
    config = parse_groups({**TOKENS, **groups(a=one("M1", access_token_env="TOKEN_M1"))})
    with pytest.raises(
        GroupsFileError, match="account M1: environment variable TOKEN_M1 .access_token_env. is not set"
    ):
        accounts_env(config.groups["a"], environ={})


def test_a_group_of_two_accounts_is_one_run_with_both_in_its_accounts_setting():
    config = parse_groups(
        groups(a={"extractor": CLOVER, "accounts": [{"merchant_id": "M1"}, {"merchant_id": "M2"}]})
    )
    env = accounts_env(config.groups["a"], environ={})
    assert json.loads(env["TAP_COMMERCE_EXPORTS__CLOVER_ACCOUNTS"]) == [
        {"merchant_id": "M1"},
        {"merchant_id": "M2"},
    ]


def test_state_ids_are_meltanos_with_the_group_as_suffix():
    assert state_id("prod", CLOVER, "target-postgres", "eu-1") == f"prod:{CLOVER}-to-target-postgres:eu-1"


def test_a_run_gets_its_own_meltano_folder_sharing_the_plugin_venvs_and_the_system_database(tmp_path):
    (tmp_path / "extractors").mkdir()
    cli = Meltano(tmp_path, env={"MELTANO_SYS_DIR_ROOT": str(tmp_path)})
    with cli.isolated("a") as env, cli.isolated("a") as again:
        own = Path(env["MELTANO_SYS_DIR_ROOT"])
        assert own.parent == tmp_path / "runs" and own.name.startswith("a-")
        assert env["MELTANO_DATABASE_URI"] == f"sqlite:///{tmp_path / 'meltano.db'}"
        assert (own / "extractors").resolve() == (tmp_path / "extractors").resolve()
        assert again["MELTANO_SYS_DIR_ROOT"] != str(own)  # two runs of a group never share one


def mark(account, value):
    return {"context": {"account": account}, "replication_key": "createdTime", "replication_key_value": value}


def test_moving_an_account_moves_its_partitions_and_nothing_else():
    source = {"bookmarks": {"orders": {"partitions": [mark("M1", "1"), mark("M2", "2")]},
                            "payments": {"partitions": [mark("M2", "3")]}}}  # fmt: skip
    target = {"bookmarks": {"orders": {"partitions": [mark("M3", "4")]}}}
    new_source, new_target, moved = move_account(source, target, "M2")
    assert moved == ["orders", "payments"]
    assert new_source == {"bookmarks": {"orders": {"partitions": [mark("M1", "1")]}}}
    assert new_target == {"bookmarks": {"orders": {"partitions": [mark("M3", "4"), mark("M2", "2")]},
                                        "payments": {"partitions": [mark("M2", "3")]}}}  # fmt: skip
    assert source["bookmarks"]["orders"]["partitions"][1] == mark("M2", "2")  # inputs untouched


def test_a_one_account_state_moves_whole_but_never_onto_another_accounts():
    single = {"bookmarks": {"orders": {"replication_key_value": "9"}}}
    _, target, moved = move_account(single, {}, "M1")
    assert moved == ["orders"] and target["bookmarks"]["orders"] == {"replication_key_value": "9"}
    with pytest.raises(RegroupError, match="both groups hold a one-account bookmark"):
        move_account(single, single, "M1")


def test_regroup_writes_the_target_before_the_source_so_a_bookmark_is_never_in_neither(tmp_path):
    """A fake `meltano` (a script keeping states in files) records the order of the writes."""
    states = tmp_path / "states"
    states.mkdir()
    (states / "dev:tap-to-target-duckdb:a").write_text(json.dumps({"singer_state": {"bookmarks": {"orders": {
        "partitions": [mark("M1", "5")]}}}}))  # fmt: skip
    fake = tmp_path / "meltano"
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import sys, pathlib\n"
        f"d = pathlib.Path({str(states)!r})\n"
        "args = [a for a in sys.argv[1:] if not a.startswith('--')]\n"
        "if args[:2] == ['state', 'get']:\n"
        "    p = d / args[2]; print(p.read_text() if p.exists() else '{}')\n"
        "elif args[:2] == ['state', 'set']:\n"
        "    (d / args[2]).write_text(args[3]); open(d.parent / 'writes', 'a').write(args[2] + '\\n')\n"
    )
    fake.chmod(0o755)
    argv = ["--extractor", "tap", "--from", "a", "--to", "b", "--account", "M1", "--meltano", str(fake),
            "--project-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "writes").read_text().split() == [
        "dev:tap-to-target-duckdb:b",
        "dev:tap-to-target-duckdb:a",
    ]
    moved = json.loads((states / "dev:tap-to-target-duckdb:b").read_text())["singer_state"]
    assert moved["bookmarks"]["orders"]["partitions"] == [mark("M1", "5")]
    assert main(argv) == 1  # nothing left to move: said, and nothing written


def test_a_run_folder_keeps_the_system_database_the_environment_or_meltano_yml_names(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "meltano.yml").write_text("project_id: x\n")
    sys_dir = str(tmp_path / "sys")
    with Meltano(project, env={"MELTANO_SYS_DIR_ROOT": sys_dir}).isolated("a") as plain:
        assert plain["MELTANO_DATABASE_URI"] == f"sqlite:///{tmp_path / 'sys' / 'meltano.db'}"
    named = {"MELTANO_SYS_DIR_ROOT": sys_dir, "MELTANO_DATABASE_URI": "postgresql+psycopg://h/db"}
    with Meltano(project, env=named).isolated("a") as env:
        assert "MELTANO_DATABASE_URI" not in env
    (project / "meltano.yml").write_text("project_id: x\ndatabase_uri: postgresql+psycopg://h/db\n")
    with Meltano(project, env={"MELTANO_SYS_DIR_ROOT": sys_dir}).isolated("a") as env:
        assert "MELTANO_DATABASE_URI" not in env
