"""What CI and `make install` run is what was reviewed (issue 23, item 11).

The locks pinned versions but not files (a release replaced on the index would install),
CI actions were pinned by tag (a tag can be moved to other code), and the workflow's token
had GitHub's default permissions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCKS = sorted((REPO / "requirements").glob("*.txt"))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\[\],-]*)==(\S+)")


def pins_without_hashes(text: str) -> list[str]:
    """Each `name==version` requirement whose continuation lines carry no sha256."""
    missing: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        following = []
        j = i
        while lines[j].rstrip().endswith("\\"):
            j += 1
            following.append(lines[j])
        if not any("--hash=sha256:" in f for f in following):
            missing.append(match.group(1))
    return missing


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_locked_requirement_names_the_sha256_of_its_files(lock):
    text = lock.read_text()
    assert PIN.search(text) or any(PIN.match(line) for line in text.splitlines()), "no pins at all?"
    assert pins_without_hashes(text) == []


def test_the_makefile_makes_hashed_locks_and_installs_only_what_they_hash():
    makefile = (REPO / "Makefile").read_text()
    assert "--no-hashes" not in makefile
    compiles = re.findall(r"pip compile[^\n]*", makefile)
    assert compiles and all("--generate-hashes" in c for c in compiles), compiles
    syncs = [line for line in makefile.splitlines() if "pip sync" in line]
    assert syncs and all("--require-hashes" in s for s in syncs), syncs


def test_the_bench_installs_its_loader_only_from_hashes():
    source = (REPO / "scripts" / "bench_loader.py").read_text()
    assert '"sync",' in source and '"--require-hashes"' in source


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_ci_actions_are_pinned_by_commit_and_the_token_only_reads(workflow):
    text = workflow.read_text()
    uses = re.findall(r"uses:\s*(\S+)", text)
    assert uses
    assert [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", u)] == []
    assert re.search(r"^permissions:\n  contents: read\n", text, re.MULTILINE), "no top-level read-only token"
    assert "persist-credentials: false" in text
