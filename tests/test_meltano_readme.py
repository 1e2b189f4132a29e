"""The README's Meltano sections, run as written, in fresh copies of the project.

Every command line of the `sh` blocks under "With Meltano" runs verbatim (bash, in the
copy's folder, `M=.venv-meltano/bin/meltano`), block by block, against the real sandbox
and a real PostgreSQL on loopback (one project: the production settings first, then the
quick start, selection, PostgreSQL and state, so the quick start's dev runs are the ones
that prove the production secrets in `.env` never reach the sandbox; a second, instant,
test checks that the walk runs every command of the README); the lines that start
servers are this test's fixtures, and the two `--environment=prod run` lines, which need
real credentials, are only configured. Where the README's dev environment says 127.0.0.1:8000 and :55432, the
test points the plugins at its own free ports with Meltano's `<PLUGIN>_<SETTING>`
variables, as a user could. Then the outcome is checked against what the README promises:
the sandbox's ground truth in DuckDB and PostgreSQL, nothing loaded twice, the production
tokens the README stores in `.env` never sent to the sandbox, selection per extractor, the
`{"singer_state": ...}` wrapper, errors at Meltano's [error] level.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import yaml

from commerce_sandbox.faults import credential_fingerprint
from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.meltano_helpers import REPO, IsolatedMeltano, as_key_tuples, missing_install, table_keys

pytestmark = pytest.mark.meltano

UTC = timezone.utc
START, END = "2025-01-01T00:00:00Z", "2025-01-15T00:00:00Z"  # dev's start; a short end
NC_TOKEN = "nc-production-token-0f9e8d"
CLOVER_TOKEN = "clover-production-token-7a6b5c"
PG_PASSWORD = "prod-db-password-3c2d"

#: Lines of the README's blocks that are not Meltano's: what this test does for them.
PROVIDED_BY_THE_TEST = {
    "make install": "the plugins installed by `make install` (shadow venvs of the copy)",
    "make sandbox &": "the sandbox fixture (in-process, on a free port)",
    "M=.venv-meltano/bin/meltano": "M is set for every line",
    ".venv/bin/python scripts/postgres.py start --dir .pg --port 55432": "the PostgreSQL fixture",
    ".venv/bin/python scripts/postgres.py stop --dir .pg": "the PostgreSQL fixture",
}
NEEDS_REAL_CREDENTIALS = {
    "$M --environment=prod run tap-commerce-exports target-duckdb",
    "$M --environment=prod run tap-commerce-exports target-postgres",
}


def readme_blocks() -> dict[str, list[list[str]]]:
    """{heading: [command lines of each `sh` block]} under "## With Meltano" (the
    section's own blocks under "With Meltano"; comments stripped)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## With Meltano") :]
    section = section[: section.index("\n## ", 1)]
    blocks: dict[str, list[list[str]]] = {}
    heading = "With Meltano"
    for part in re.split(r"^(###? .*)$", section, flags=re.M):
        if part.startswith("#"):
            heading = part.lstrip("#").strip()
            continue
        for block in re.findall(r"```sh\n(.*?)```", part, flags=re.S):
            lines = []
            for line in block.splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line and not line.startswith("#"):
                    lines.append(line)
            blocks.setdefault(heading, []).append(lines)
    return blocks


def block(heading: str, index: int = 0) -> list[str]:
    return readme_blocks()[heading][index]


QUICK_START = ("With Meltano", 0)
PROD = ("A real store or merchant", 0)
SELECT = ("Select streams", 0)
POSTGRES_DEV = ("PostgreSQL", 0)
POSTGRES_PROD = ("PostgreSQL", 1)
STATE = ("State, schedules", 0)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def sandbox(require):
    require(missing_install())
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=50)) as server:
        yield server


@pytest.fixture(scope="module")
def postgres(require):
    sys.path.insert(0, str(REPO / "scripts"))
    from postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.temporary().start()
    except PostgresUnavailable as exc:
        require(str(exc))
    try:
        yield server
    finally:
        server.remove()


def fresh_project(tmp_path, sandbox, pg_url: str = "") -> IsolatedMeltano:
    meltano = IsolatedMeltano(tmp_path, fresh_copy=True)
    meltano.extra_env = {
        # the user's secrets, as the README's prod steps read them
        "NC_TOKEN": NC_TOKEN,
        "CLOVER_TOKEN": CLOVER_TOKEN,
        "PG_PASSWORD": PG_PASSWORD,
        # this test's sandbox and server, instead of dev's fixed ports
        "TAP_COMMERCE_EXPORTS_API_URL": sandbox.api_url,
        "TAP_COMMERCE_EXPORTS__CLOVER_API_URL": sandbox.clover_url,
        # a short range and fast polling; a fraction, which Meltano 4.4.1 used to refuse
        "TAP_COMMERCE_EXPORTS_END_DATE": END,
        "TAP_COMMERCE_EXPORTS__CLOVER_END_DATE": END,
        "TAP_COMMERCE_EXPORTS_POLL_INTERVAL": "0.5",
        "TAP_COMMERCE_EXPORTS__CLOVER_POLL_INTERVAL": "0.5",
        "TAP_COMMERCE_EXPORTS_MAX_CONCURRENT_EXPORTS": "13",
        "TAP_COMMERCE_EXPORTS_MAX_REQUESTS_PER_SECOND": "40",
    }
    if pg_url:
        meltano.extra_env["TARGET_POSTGRES_SQLALCHEMY_URL"] = pg_url
    return meltano


@dataclass
class Step:
    command: str
    output: str
    exports_before: int
    exports_after: int


def walk(meltano: IsolatedMeltano, sandbox, *blocks: tuple[str, int]) -> list[Step]:
    """Run these README blocks' lines in order; every Meltano line must succeed."""
    steps = []
    for heading, index in blocks:
        for command in block(heading, index):
            if command in PROVIDED_BY_THE_TEST or command in NEEDS_REAL_CREDENTIALS:
                continue
            before = _exports(sandbox)
            result = meltano.shell(f"M=.venv-meltano/bin/meltano; {command}", timeout=300)
            assert result.returncode == 0, f"{command}\n{result.tail()}"
            assert "Traceback" not in result.output, f"{command}\n{result.tail()}"
            steps.append(Step(command, result.output, before, _exports(sandbox)))
    return steps


def _exports(sandbox) -> int:
    return sum(sandbox.stats()["exports_created"].values())


def output_of(steps: list[Step], command: str) -> str:
    return next(s.output for s in steps if s.command == command)


def test_the_walk_covers_every_command_line_of_the_readme():
    covered = [QUICK_START, PROD, SELECT, POSTGRES_DEV, POSTGRES_PROD, STATE]
    every = [line for blocks in readme_blocks().values() for lines in blocks for line in lines]
    walked = [line for heading, index in covered for line in block(heading, index)]
    assert sorted(walked) == sorted(every), "a README block that no test below runs"
    unknown = [c for c in every if not c.startswith("$M ") and c not in PROVIDED_BY_THE_TEST]
    assert not unknown, f"README lines this test does not know how to run: {unknown}"
    assert set(NEEDS_REAL_CREDENTIALS) <= set(every), "the README's prod run lines changed"


def test_the_readme_walk_loads_the_sandbox_truth_once_and_never_sends_a_production_token(
    sandbox, postgres, tmp_path
):
    # One project walks the production settings (secrets to .env), then the quick start,
    # selection, PostgreSQL and the state commands (they read the state the quick start's
    # duckdb run left). The quick start's dev runs are then the dev runs "with a real token
    # in .env" that the production section promises never reach the sandbox with it: one
    # Meltano project, and two Meltano runs fewer, than a project for each.
    meltano = fresh_project(tmp_path, sandbox, postgres.url)
    steps = walk(meltano, sandbox, PROD, POSTGRES_PROD, QUICK_START, SELECT, POSTGRES_DEV, STATE)

    # Production settings stay in .env: the secrets the README's prod steps set are there.
    dotenv = (meltano.project / ".env").read_text()
    assert NC_TOKEN in dotenv and CLOVER_TOKEN in dotenv and PG_PASSWORD in dotenv

    # The access check passed and created nothing.
    check = next(s for s in steps if s.command == "$M invoke tap-commerce-exports --test")
    assert "connection test passed" in check.output
    assert check.exports_after == check.exports_before

    # DuckDB holds the sandbox's truth of both providers (selection came after these runs).
    for provider, schema, definitions in (
        ("nextcommerce", "nextcommerce", NEXTCOMMERCE_STREAMS),
        ("clover", "clover", CLOVER_STREAMS),
    ):
        for d in definitions:
            expected = as_key_tuples(sandbox.truth_keys(provider, d.export_type, utc(START), utc(END)))
            got = table_keys(meltano.warehouse, schema, d.name, d.primary_keys) if expected else []
            assert sorted(got) == sorted(expected), f"duckdb {schema}.{d.name}"

    # Selection is per extractor: selecting Next Commerce's orders left Clover's payments.
    nc_list = output_of(steps, "$M select tap-commerce-exports --list")
    assert re.search(r"\[selected\s*\]\s+orders\.", nc_list), nc_list
    assert not re.search(r"\[selected\s*\]\s+customers\.", nc_list), nc_list
    clover_list = output_of(steps, "$M select tap-commerce-exports--clover --list")
    assert re.search(r"\[selected\s*\]\s+payments\.", clover_list), clover_list
    assert not re.search(r"\[selected\s*\]\s+orders\.", clover_list), clover_list

    # PostgreSQL: the selected stream equals the truth; the rerun added no row.
    orders = next(d for d in NEXTCOMMERCE_STREAMS if d.name == "orders")
    expected = sorted(
        as_key_tuples(sandbox.truth_keys("nextcommerce", orders.export_type, utc(START), utc(END)))
    )
    rows = sorted(postgres.query(f"select {', '.join(orders.primary_keys)} from nextcommerce.orders"))
    assert rows == expected, "PostgreSQL nextcommerce.orders differs from the sandbox's truth"
    tables = postgres.query(
        "select table_name from information_schema.tables where table_schema = 'nextcommerce'"
    )
    assert {t[0] for t in tables} == {"orders"}, f"only the selected stream is loaded: {tables}"
    first, second = [s for s in steps if s.command == "$M run tap-commerce-exports target-postgres"]
    assert first.exports_after > first.exports_before, "the first PostgreSQL run created no export"
    # The rerun re-reads only the lookback (default 7 days): one export for the one selected
    # stream, and the loader's upsert keeps the table equal to the truth.
    assert second.exports_after - second.exports_before == 1, "the rerun re-reads one lookback window"

    # State: the wrapper `state get` prints is what `state set` takes; schedules are added.
    assert "dev:tap-commerce-exports-to-target-duckdb" in output_of(steps, "$M state list")
    saved = json.loads((meltano.project / "state.json").read_text())
    assert set(saved) == {"singer_state"}, "state get prints the wrapper state set needs"
    partition = saved["singer_state"]["bookmarks"]["orders"]["partitions"][0]
    assert (partition["replication_key"], partition["replication_key_value"]) == ("window_end", END)
    refresh = next(s for s in steps if s.command.startswith("$M run --full-refresh"))
    assert refresh.exports_after > refresh.exports_before, "--full-refresh ignored the state"
    project = yaml.safe_load((meltano.project / "meltano.yml").read_text())
    assert [j["name"] for j in project.get("jobs", [])] == ["nc"]
    assert [s["name"] for s in project.get("schedules", [])] == ["nightly"]

    # The dev runs above (the quick start's access check, both providers into DuckDB, both
    # PostgreSQL runs, the full refresh), with those secrets in .env (which outranks the
    # dev environment), sent the sandbox its own token only.
    for command in (
        "$M invoke tap-commerce-exports --test",
        "$M run tap-commerce-exports--clover target-duckdb",
    ):
        assert command in block(*QUICK_START)
        assert command in [s.command for s in steps], f"the walk no longer runs {command}"
    seen = set(sandbox.stats()["credential_fingerprints"])
    assert seen == {credential_fingerprint("sandbox-token")}, "a credential other than the sandbox's"
    assert credential_fingerprint(NC_TOKEN) not in seen and credential_fingerprint(CLOVER_TOKEN) not in seen

    # A wrong number from the environment: one line, at Meltano's [error] level, no traceback.
    meltano.extra_env["TAP_COMMERCE_EXPORTS_POLL_INTERVAL"] = "half a second"
    result = meltano.shell("M=.venv-meltano/bin/meltano; $M invoke tap-commerce-exports --test")
    assert result.returncode != 0
    errors = [line for line in result.output.splitlines() if "tap-commerce-exports: error:" in line]
    assert len(errors) == 1, result.tail()
    assert "[error" in errors[0] and "setting 'poll_interval' is 'half a second'" in errors[0]
    assert "Traceback" not in result.output and NC_TOKEN not in result.output
