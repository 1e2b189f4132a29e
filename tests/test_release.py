"""A release as the tag workflow makes it, run here short of publishing.

`make release-check` (scripts/release_check.py) builds both distributions, twine-checks
them and installs them into a clean venv; the workflow runs that same target. These specs
run its core, and check that the version comes from git tags while a checkout without
tags, or without git at all, still builds.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".venv-uv" / "bin" / "uv"
TWINE = REPO / ".venv-release" / "bin" / "twine"

pytestmark = pytest.mark.release


def needs(*tools: Path) -> None:
    missing = [str(t.relative_to(REPO)) for t in tools if not t.exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run make install and make release-check once")


def build_wheel(source: Path, out: Path) -> str:
    """The version of the wheel ``uv build`` makes of ``source``."""
    subprocess.run([str(UV), "build", "--quiet", "--wheel", "--out-dir", str(out), str(source)], check=True)
    (wheel,) = out.glob("*.whl")
    return wheel.name.split("-")[1]


def test_release_check_builds_twine_checks_and_installs_both_distributions(tmp_path):
    needs(UV, TWINE)
    dist = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "release_check.py"), "--dist", str(dist)]
        + ["--uv", str(UV), "--twine", str(TWINE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 files PASSED" in done.stdout
    assert "release check passed" in done.stdout
    (tap_sdist,) = (dist / "tap-commerce-exports").glob("*.tar.gz")
    (sandbox_wheel,) = (dist / "tap-commerce-exports-sandbox").glob("*.whl")
    sdist_names = tarfile.open(tap_sdist).getnames()
    assert any(name.endswith("/LICENSE") for name in sdist_names)
    assert any(name.endswith("/CHANGELOG.md") for name in sdist_names)
    assert any(name.startswith("commerce_sandbox/") for name in zipfile.ZipFile(sandbox_wheel).namelist())


def test_the_version_is_the_git_tag(tmp_path):
    needs(UV)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-tags", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "tag", "v9.8.7"], check=True)
    assert build_wheel(clone, tmp_path / "tagged") == "9.8.7"
    assert build_wheel(clone / "sandbox", tmp_path / "tagged-sandbox") == "9.8.7"


def test_a_clone_without_release_tags_and_a_folder_without_git_still_build(tmp_path):
    needs(UV)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-tags", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "tag", "HOUSE-1"], check=True)  # a tag, not a release
    assert build_wheel(clone, tmp_path / "untagged").startswith("0.0.1.dev")
    exported = tmp_path / "exported"
    exported.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(exported)], input=archive.stdout, check=True)
    assert build_wheel(exported, tmp_path / "no-git") == "0.0.0"
