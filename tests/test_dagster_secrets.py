"""What a group's `meltano run` can see of the Dagster process, and what it leaves on disk.

Issue 23, item 4: a run inherited the whole Dagster environment (every group's tokens, the
database password), Meltano wrote each group's resolved config (tokens included) `0644`
under `0755` folders that stayed behind, and `<setting>_env` could name any variable. A
fake `meltano` (a script) reports what it was given; no Dagster is needed.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from orchestration.groups import GroupsFileError, parse_groups
from orchestration.meltano_cli import Meltano, private_run_dir

CLOVER = "tap-commerce-exports--clover"
NC = "tap-commerce-exports"


def fake_meltano(tmp_path: Path) -> tuple[Path, Path]:
    """A `meltano` that writes its environment, umask and a config file (as Meltano does
    under `<sys dir>/run/<plugin>/`) and reports them in `report.json`."""
    report = tmp_path / "report.json"
    script = tmp_path / "meltano"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        "mask = os.umask(0); os.umask(mask)\n"
        "sys_dir = os.environ.get('MELTANO_SYS_DIR_ROOT')\n"
        "config = None\n"
        "if sys_dir:\n"
        "    folder = pathlib.Path(sys_dir) / 'run' / 'tap'\n"
        "    folder.mkdir(parents=True)\n"
        "    config = folder / 'tap.config.json'\n"
        '    config.write_text(\'{"access_token": "secret"}\')\n'
        "    config = {'path': str(config), 'mode': config.stat().st_mode & 0o777,\n"
        "              'folder_mode': folder.stat().st_mode & 0o777,\n"
        "              'sys_dir_mode': pathlib.Path(sys_dir).stat().st_mode & 0o777}\n"
        f"pathlib.Path({str(report)!r}).write_text(json.dumps("
        "{'env': dict(os.environ), 'umask': mask, 'config': config}))\n"
        "print('ran')\n"
    )
    script.chmod(0o700)
    return script, report


DAGSTER_PROCESS_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/dagster",
    "LANG": "C.UTF-8",
    "SSL_CERT_FILE": "/etc/ssl/ca.pem",
    "MELTANO_DATABASE_URI": "postgresql+psycopg://meltano:pw@db/meltano",
    "DAGSTER_PG_PASSWORD": "dagster-db-password",
    "PGPASSWORD": "another-db-password",
    "CLOVER_TOKEN_M1": "token-of-another-group",
    "AWS_SECRET_ACCESS_KEY": "cloud-key",
    f"{CLOVER.upper().replace('-', '_')}_START_DATE": "2025-01-01",  # this extractor's setting
    "TAP_COMMERCE_EXPORTS_LOOKBACK": "0",  # its parent's (Meltano reads the parent's too)
    "TAP_COMMERCE_EXPORTS__OTHER_ACCESS_TOKEN": "a sibling extractor's token",
    "TARGET_DUCKDB_PATH": "/data/warehouse.duckdb",  # this loader's setting
    "TARGET_POSTGRES_PASSWORD": "another loader's password",
}


def test_a_meltano_run_sees_only_the_basics_meltanos_own_settings_and_its_own_plugins_settings(tmp_path):
    script, report = fake_meltano(tmp_path)
    cli = Meltano(tmp_path, str(script), env=DAGSTER_PROCESS_ENV)
    outcome = cli.run(
        ["run", CLOVER, "target-duckdb"],
        {"TAP_COMMERCE_EXPORTS__CLOVER_ACCOUNTS": "[]"},
        plugins=(CLOVER, "target-duckdb"),
    )
    assert outcome.returncode == 0, outcome.last_lines
    seen = json.loads(report.read_text())["env"]
    assert set(seen) == {
        "PATH",
        "HOME",
        "LANG",
        "SSL_CERT_FILE",
        "MELTANO_DATABASE_URI",  # the state backend: needed
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS",
        "TAP_COMMERCE_EXPORTS__CLOVER_START_DATE",
        "TAP_COMMERCE_EXPORTS_LOOKBACK",
        "TARGET_DUCKDB_PATH",
        "TAP_COMMERCE_EXPORTS__CLOVER_ACCOUNTS",  # the group's own, added by the caller
    }, "a run saw variables that are not its own"


def test_a_deployment_can_pass_more_variables_by_name_or_prefix_and_only_those(tmp_path):
    script, report = fake_meltano(tmp_path)
    cli = Meltano(tmp_path, str(script), env=DAGSTER_PROCESS_ENV, pass_env=("AWS_*",))
    assert cli.run(["run", CLOVER, "target-duckdb"], plugins=(CLOVER, "target-duckdb")).returncode == 0
    seen = json.loads(report.read_text())["env"]
    assert seen["AWS_SECRET_ACCESS_KEY"] == "cloud-key"
    assert "PGPASSWORD" not in seen and "CLOVER_TOKEN_M1" not in seen


def test_state_commands_get_no_plugin_settings_and_no_other_secret(tmp_path):
    script, report = fake_meltano(tmp_path)
    Meltano(tmp_path, str(script), env=DAGSTER_PROCESS_ENV).upgrade_database()
    seen = json.loads(report.read_text())["env"]
    assert "MELTANO_DATABASE_URI" in seen
    assert not {k for k in seen if k.startswith(("TAP_", "TARGET_", "PG", "DAGSTER_", "CLOVER_"))}


def test_a_group_run_writes_its_files_private_and_leaves_no_folder_behind(tmp_path):
    script, report = fake_meltano(tmp_path)
    sys_dir = tmp_path / "sys"
    (sys_dir / "extractors").mkdir(parents=True)
    cli = Meltano(tmp_path, str(script), env={"PATH": "/usr/bin:/bin", "MELTANO_SYS_DIR_ROOT": str(sys_dir)})
    outcome = cli.run_group("clover-a", ["run", CLOVER, "target-duckdb"], {}, plugins=(CLOVER,))
    assert outcome.returncode == 0, outcome.last_lines
    said = json.loads(report.read_text())
    assert said["umask"] == 0o077
    assert said["config"]["mode"] == 0o600, "the resolved config (tokens) was readable by others"
    assert said["config"]["folder_mode"] == 0o700 and said["config"]["sys_dir_mode"] == 0o700
    assert Path(said["env"]["MELTANO_SYS_DIR_ROOT"]).parent == sys_dir / "runs"
    assert stat.S_IMODE((sys_dir / "runs").stat().st_mode) == 0o700
    assert not Path(said["config"]["path"]).exists()
    assert list((sys_dir / "runs").iterdir()) == [], "the run's folder (its config files) stayed behind"


def test_a_folder_left_by_a_killed_run_is_removed_by_the_next_run_but_a_running_ones_is_kept(tmp_path):
    (tmp_path / "extractors").mkdir()
    with private_run_dir(tmp_path, "a") as running:  # a run in progress (holds its lock)
        dead = tmp_path / "runs" / "a-killed"
        (dead / "run").mkdir(parents=True)
        (dead / ".lock").write_text("")  # its process died: nobody holds the lock
        with private_run_dir(tmp_path, "b") as other:
            assert running["MELTANO_SYS_DIR_ROOT"] != other["MELTANO_SYS_DIR_ROOT"]
            assert Path(running["MELTANO_SYS_DIR_ROOT"]).is_dir()
            assert not dead.exists()
            shared = Path(other["MELTANO_SYS_DIR_ROOT"]) / "extractors"
            assert shared.resolve() == (tmp_path / "extractors").resolve()  # plugin venvs shared
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_runs_folder_that_is_a_symlink_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "runs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match="runs"), private_run_dir(tmp_path / "sys", "a"):
        pass


def test_the_lock_of_a_running_group_is_held_for_the_whole_run(tmp_path):
    with private_run_dir(tmp_path, "a") as env:
        lock = Path(env["MELTANO_SYS_DIR_ROOT"]) / ".lock"
        fd = os.open(lock, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def groups_with(account: dict, **plan) -> dict:
    return {
        "extractors": {CLOVER: plan} if plan else {},
        "groups": {"a": {"extractor": CLOVER, "accounts": [{"merchant_id": "M1", **account}]}},
    }


@pytest.mark.parametrize(
    ("account", "plan", "says"),
    [
        ({"access_token_env": "HOME"}, {}, "secret_env_prefix"),
        (
            {"access_token_env": "HOME"},
            {"secret_env_prefix": "CLOVER_TOKEN_"},
            "must start with CLOVER_TOKEN_",
        ),
        ({"access_token_env": "MELTANO_DATABASE_URI"}, {"secret_env_prefix": "MELTANO_"}, "cannot be"),
        ({"access_token_env": "DAGSTER_PG_PASSWORD"}, {"secret_env_prefix": "DAGSTER_"}, "cannot be"),
        ({"access_token_env": "X_1"}, {"secret_env_prefix": "X"}, "secret_env_prefix"),
        ({"access_token_env": ["CLOVER_TOKEN_M1"]}, {"secret_env_prefix": "CLOVER_TOKEN_"}, "variable name"),
        ({"access_token_env": "CLOVER_TOKEN_M1\nX"}, {"secret_env_prefix": "CLOVER_TOKEN_"}, "variable name"),
    ],
)
def test_a_setting_env_may_name_only_a_variable_under_its_extractors_declared_prefix(account, plan, says):
    with pytest.raises(GroupsFileError, match=says) as caught:
        parse_groups(groups_with(account, **plan))
    assert "\n" not in str(caught.value)


def test_a_setting_env_under_the_declared_prefix_is_accepted():
    config = parse_groups(
        groups_with({"access_token_env": "CLOVER_TOKEN_M1"}, secret_env_prefix="CLOVER_TOKEN_")
    )
    assert config.extractors[CLOVER].secret_env_prefix == "CLOVER_TOKEN_"
