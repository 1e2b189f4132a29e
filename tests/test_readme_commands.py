"""Every shell block of the README runs as written, or a test says why it cannot.

A newcomer pastes the README's blocks one after another; these specs do the same, in
bash, from a folder laid out as a clone after `make install` is. The one change a spec
makes to a block is the sandbox's port (the README's 8000 becomes a free port of this
machine, so tests beside each other never meet). The "With Meltano" blocks are run by
tests/test_meltano_readme.py; the last spec here checks that together they cover every
block of the README.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: Blocks that tests/test_meltano_readme.py runs (its sections, under "With Meltano").
RUN_BY_THE_MELTANO_WALK = {
    "With Meltano",
    "A real store or merchant",
    "Select streams",
    "PostgreSQL",
    "State, schedules",
}
#: Blocks not run by a test, and why.
NOT_RUN = {
    ("Install", 0): "`make install` is what `make test` runs before the suite (and CI from a fresh clone)",
    ("Quick start: the demo", 0): "`make demo` rebuilds the repository's own Meltano state and DuckDB file; "
    "its parts (the sandbox, `meltano run` into DuckDB) run in tests/test_meltano_readme.py",
    ("Many accounts on Dagster", 0): "`dagster dev` is a long-running UI server; its definitions load in "
    "tests/test_dagster_definitions.py and run in tests/test_dagster_e2e.py",
}


def sh_blocks() -> list[tuple[str, int, str]]:
    """(heading, index under that heading, text) of every ```sh block of the README."""
    blocks: list[tuple[str, int, str]] = []
    heading, count = "", 0
    for part in re.split(r"^(#{2,3} .*)$", README.read_text(encoding="utf-8"), flags=re.M):
        if re.match(r"#{2,3} ", part):
            heading, count = part.lstrip("#").strip(), 0
            continue
        for text in re.findall(r"```sh\n(.*?)```", part, flags=re.S):
            blocks.append((heading, count, text))
            count += 1
    return blocks


def block(heading: str, index: int = 0) -> str:
    (text,) = [t for h, i, t in sh_blocks() if (h, i) == (heading, index)]
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_block(text: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``text`` in ``bash -e`` (a paste that stops at the first failing line), in a session
    of its own: whatever it started in the background is ended with it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_COMMERCE_EXPORTS", "MELTANO_"))}
    environ.update({"MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})})
    process = subprocess.Popen(
        ["bash", "-e", "-c", text],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=900)  # bounds a hang only
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def records(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            counts[message["stream"]] = counts.get(message["stream"], 0) + 1
    return counts


def bookmarks(state_file: Path) -> dict[str, str]:
    state = json.loads(state_file.read_text(encoding="utf-8"))
    return {
        stream: entry["partitions"][0]["replication_key_value"]
        for stream, entry in state["bookmarks"].items()
    }


@pytest.mark.e2e
@pytest.mark.meltano  # Meltano's target-jsonl, three syncs: among the longest, scheduled first
def test_the_by_hand_run_pastes_end_to_end_into_target_jsonl_and_resumes_from_the_targets_state(
    tmp_path, require
):
    target = REPO / ".meltano" / "loaders" / "target-jsonl" / "venv" / "bin" / "target-jsonl"
    require(None if target.exists() else "target-jsonl is not installed: run make install")
    for name in (".venv", ".meltano"):  # a clone after `make install`
        (tmp_path / name).symlink_to(REPO / name)
    port = free_port()
    text = block("Run by hand against the sandbox").replace("8000", str(port))

    done = run_block(text, tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "output"
    emitted = records(output / "messages.jsonl")
    assert len(emitted) == 13 and all(emitted.values())
    assert set(bookmarks(output / "state.json").values()) == {"2025-03-01T00:00:00Z"}
    assert len(bookmarks(output / "state.json")) == 13
    loaded = {p.name.rsplit("-", 1)[0] for p in (output / "jsonl").glob("*.jsonl")}
    assert loaded == set(emitted)
    assert "connection test passed" in done.stderr
    # the rerun starts `lookback` days before the bookmark: fewer rows than the first run
    runs = re.findall(r"sync finished in [\d.]+s: (\d+) records", done.stderr)
    assert len(runs) == 3 and int(runs[2]) < int(runs[1]) == sum(emitted.values())


@pytest.mark.release
def test_the_pip_install_block_installs_the_tap_and_the_sandbox_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)

    done = run_block(block("Install", 1), clone)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("tap-commerce-exports v")
    assert (
        "start_date" in done.stdout
        and (clone / ".venv-pip" / "bin" / "tap-commerce-exports-sandbox").exists()
    )


@pytest.mark.meltano
def test_a_fresh_meltano_project_adds_the_tap_from_its_definition_and_runs_it_against_the_sandbox(
    tmp_path, require
):
    from tests.meltano_helpers import missing_install

    require(missing_install())
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=50)) as server:
        text = block("Add it to your Meltano project").replace("8000", str(server.port))
        done = run_block(text, REPO, env={"TMPDIR": str(tmp_path)})

    assert done.returncode == 0, done.stderr[-3000:]
    (project,) = tmp_path.glob("*/my-warehouse")
    emitted = records(project / "messages.jsonl")
    assert len(emitted) == 13 and all(emitted.values())
    assert "connection test passed" in done.stderr
    assert "sandbox-token" not in (project / "meltano.yml").read_text(encoding="utf-8")  # it went to .env


def test_every_readme_block_is_run_by_a_test_or_says_why_not():
    run_here = {("Run by hand against the sandbox", 0), ("Install", 1), ("Add it to your Meltano project", 0)}
    unaccounted = [
        (heading, index)
        for heading, index, _ in sh_blocks()
        if heading not in RUN_BY_THE_MELTANO_WALK and (heading, index) not in run_here | set(NOT_RUN)
    ]
    assert unaccounted == [], "README blocks that no test runs"
    present = {(heading, index) for heading, index, _ in sh_blocks()}
    assert run_here | set(NOT_RUN) <= present, "a block this module names is gone from the README"
