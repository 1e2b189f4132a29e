"""The helper scripts never run what a path or a writable folder says (issue 23, item 9).

`scripts/postgres.py` passed its data directory through a shell (`pg_ctl` builds a shell
command line from `-D`, `-l` and `-o`: a folder named `d$(id>x)x` ran `id`) and installed
packages as root without being asked; `scripts/bench_loader.py` ran `/tmp/tools/bin/uv`
(anyone can create it) when `.venv-uv` was missing; a group name with a trailing newline
passed the groups file's pattern (`$` matches before a final newline).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from orchestration.groups import GroupsFileError, parse_groups

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import bench_loader  # noqa: E402
import postgres  # noqa: E402


@pytest.mark.e2e
def test_a_data_directory_named_like_a_command_is_a_folder_name_not_a_command(monkeypatch, require):
    if postgres._bindir() is None:
        require("no PostgreSQL server programs here")
    # under the system temp dir, open to all: as root the cluster runs as `postgres`
    base = Path(tempfile.mkdtemp(prefix="tap-commerce-exports-pg-shell-"))
    base.chmod(0o777)
    monkeypatch.chdir(base)  # where `id>x` would write
    server = postgres.PostgresServer(base / "d$(id>x)x`id>y`", postgres.free_port())
    try:
        server.start()
        assert server.query("select 1") == [("1",)]  # it runs, in the folder of that name
        assert (base / "d$(id>x)x`id>y`" / "data" / "PG_VERSION").exists()
    finally:
        server.remove()
        leftovers = sorted(p.name for p in base.iterdir())
        shutil.rmtree(base, ignore_errors=True)
    assert leftovers == [], f"the folder's name ran as a command: {leftovers}"


def test_packages_are_installed_as_root_only_when_asked(monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(postgres, "_bindir", lambda: None)
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(postgres.subprocess, "run", lambda argv, **kw: calls.append(argv))
    with pytest.raises(postgres.PostgresUnavailable, match="--install-packages"):
        postgres.server_bindir()
    assert calls == [], "apt-get ran without being asked"
    with pytest.raises(postgres.PostgresUnavailable):
        postgres.server_bindir(install=True)  # asked: apt-get runs (here a stub: still missing)
    assert [c[0] for c in calls] == ["apt-get", "apt-get"]


def test_the_cli_installs_packages_only_with_its_flag(monkeypatch, capsys):
    asked: list[bool] = []

    def start(self):
        asked.append(self.install_packages)
        raise postgres.PostgresUnavailable("stop here")

    monkeypatch.setattr(postgres.PostgresServer, "start", start)
    monkeypatch.delenv(postgres.INSTALL_ENV, raising=False)  # CI's make test sets it
    assert postgres.main(["start", "--dir", "/nonexistent"]) == 2
    assert postgres.main(["start", "--dir", "/nonexistent", "--install-packages"]) == 2
    assert asked == [False, True]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "postgres: stop here"


def test_the_bench_never_runs_a_uv_from_a_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_loader, "ROOT", tmp_path)  # no .venv-uv here
    monkeypatch.setattr(bench_loader.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="make install"):
        bench_loader._uv()
    (tmp_path / ".venv-uv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-uv" / "bin" / "uv").write_text("")
    assert bench_loader._uv() == str(tmp_path / ".venv-uv" / "bin" / "uv")


def test_the_bench_uses_a_uv_on_path_only_outside_world_writable_folders(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    (shared / "bin").mkdir(parents=True)
    shared.chmod(0o1777)
    (shared / "bin").chmod(0o777)
    monkeypatch.setattr(bench_loader, "ROOT", tmp_path)
    monkeypatch.setattr(bench_loader.shutil, "which", lambda name: str(shared / "bin" / "uv"))
    with pytest.raises(SystemExit, match="writable by others"):
        bench_loader._uv()


@pytest.mark.parametrize("name", ["a\n", "clover-a\n"])
def test_a_group_name_with_a_trailing_newline_is_refused(name):
    with pytest.raises(GroupsFileError, match="lower-case letters"):
        parse_groups({"groups": {name: {"extractor": "x", "accounts": [{"merchant_id": "M1"}]}}})
