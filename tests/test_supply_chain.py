"""The habits of a maintained tap, checked so they cannot drift from what `make check`
enforces: pre-commit runs the same tools at the locked versions, dependabot watches every
lock and the workflows' actions, and the release workflow runs `make release-check`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def locked_version(package: str) -> str:
    text = (REPO / "uv.lock").read_text(encoding="utf-8")
    match = re.search(rf'^name = "{package}"\nversion = "([^"]+)"', text, re.MULTILINE)
    assert match, f"{package} is not in uv.lock"
    return match.group(1)


def hooks() -> dict[str, dict]:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def test_pre_commit_runs_what_make_check_runs_and_the_meltano_schema_and_typos():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    check = makefile.split("\ncheck:", 1)[1].split("\n\n", 1)[0]
    for tool in ("ruff check", "ruff format", "mypy", "lock --check"):
        assert tool in check, f"make check no longer runs {tool}: update .pre-commit-config.yaml too"
    assert {"ruff-check", "ruff-format", "mypy", "uv-lock", "check-meltano", "typos"} <= set(hooks())
    assert "vendor.meltano" in hooks()["check-meltano"]["entry"]


def test_pre_commit_pins_the_ruff_of_uv_lock():
    ruff = f"ruff=={locked_version('ruff')}"
    assert hooks()["ruff-check"]["additional_dependencies"] == [ruff]
    assert hooks()["ruff-format"]["additional_dependencies"] == [ruff]


def test_dependabot_watches_the_project_lock_the_tool_locks_and_the_actions():
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    watched = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert watched == {("uv", "/"), ("pip", "/requirements"), ("github-actions", "/")}


def test_the_release_workflow_checks_before_it_publishes_with_trusted_publishing():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    build = workflow["jobs"]["build"]
    assert any(step.get("run") == "make release-check" for step in build["steps"])
    publish = workflow["jobs"]["publish"]
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    assert any("pypa/gh-action-pypi-publish" in step.get("uses", "") for step in publish["steps"])
    assert not any("password" in (step.get("with") or {}) for step in publish["steps"])
