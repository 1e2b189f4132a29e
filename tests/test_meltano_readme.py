"""The README's Meltano sections, run as written, in a fresh copy of the project.

Every command line of the `sh` blocks under "With Meltano" runs verbatim (bash, in the
copy's folder, `M=.venv-meltano/bin/meltano`), in the README's order, against the real
sandbox and a real PostgreSQL on loopback; the lines that start servers are this test's
fixtures, and the two `--environment=prod run` lines, which need real credentials, are
only configured. Where the README's dev environment says 127.0.0.1:8000 and :55432, the
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
from datetime import datetime, timezone

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tap_commerce_exports.sandbox.faults import credential_fingerprint
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


def readme_commands() -> list[str]:
    """Command lines (comments stripped) of every `sh` block under "## With Meltano"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## With Meltano") :]
    section = section[: section.index("\n## ", 1)]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def servers():
    reason = missing_install()
    if reason:
        pytest.skip(reason)
    sys.path.insert(0, str(REPO / "scripts"))
    from postgres import PostgresServer, PostgresUnavailable

    from tap_commerce_exports.sandbox import SandboxConfig, SandboxServer

    try:
        pg = PostgresServer.temporary().start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=50)) as sandbox:
            yield sandbox, pg
    finally:
        pg.remove()


def test_every_meltano_command_of_the_readme_runs_as_written_and_does_what_it_says(servers, tmp_path):
    sandbox, pg = servers
    commands = readme_commands()
    unknown = [c for c in commands if not c.startswith("$M ") and c not in PROVIDED_BY_THE_TEST]
    assert not unknown, f"README lines this test does not know how to run: {unknown}"
    assert set(NEEDS_REAL_CREDENTIALS) <= set(commands), "the README's prod run lines changed"

    meltano = IsolatedMeltano(tmp_path, fresh_copy=True)
    meltano.extra_env = {
        # the user's secrets, as the README's prod steps read them
        "NC_TOKEN": NC_TOKEN,
        "CLOVER_TOKEN": CLOVER_TOKEN,
        "PG_PASSWORD": PG_PASSWORD,
        # this test's sandbox and server, instead of dev's fixed ports
        "TAP_COMMERCE_EXPORTS_API_URL": sandbox.api_url,
        "TAP_COMMERCE_EXPORTS__CLOVER_API_URL": sandbox.clover_url,
        "TARGET_POSTGRES_SQLALCHEMY_URL": pg.url,
        # a short range and fast polling; a fraction, which Meltano 4.4.1 used to refuse
        "TAP_COMMERCE_EXPORTS_END_DATE": END,
        "TAP_COMMERCE_EXPORTS__CLOVER_END_DATE": END,
        "TAP_COMMERCE_EXPORTS_POLL_INTERVAL": "0.5",
        "TAP_COMMERCE_EXPORTS__CLOVER_POLL_INTERVAL": "0.5",
        "TAP_COMMERCE_EXPORTS_MAX_CONCURRENT_EXPORTS": "13",
        "TAP_COMMERCE_EXPORTS_MAX_REQUESTS_PER_SECOND": "40",
    }

    steps: list[tuple[str, str, int]] = []  # (command, output, exports created so far)
    for command in commands:
        if command in PROVIDED_BY_THE_TEST or command in NEEDS_REAL_CREDENTIALS:
            continue
        result = meltano.shell(f"M=.venv-meltano/bin/meltano; {command}", timeout=300)
        assert result.returncode == 0, f"{command}\n{result.tail()}"
        assert "Traceback" not in result.output, f"{command}\n{result.tail()}"
        steps.append((command, result.output, sum(sandbox.stats()["exports_created"].values())))
    out = {command: output for command, output, _ in steps}
    exports = [n for _, _, n in steps]

    # The access check passed and created nothing.
    check = "$M invoke tap-commerce-exports --test"
    assert "connection test passed" in out[check]
    assert exports[[c for c, _, _ in steps].index(check)] == 0

    # DuckDB holds the sandbox's truth of both providers (every stream: selection came later).
    warehouse = meltano.warehouse
    for provider, schema, definitions in (
        ("nextcommerce", "nextcommerce", NEXTCOMMERCE_STREAMS),
        ("clover", "clover", CLOVER_STREAMS),
    ):
        for d in definitions:
            expected = as_key_tuples(sandbox.truth_keys(provider, d.export_type, utc(START), utc(END)))
            got = table_keys(warehouse, schema, d.name, d.primary_keys) if expected else []
            assert sorted(got) == sorted(expected), f"duckdb {schema}.{d.name}"

    # Selection is per extractor: selecting Next Commerce's orders left Clover's payments.
    clover_list = out["$M select tap-commerce-exports--clover --list"]
    assert re.search(r"\[selected\s*\]\s+payments\.", clover_list), clover_list
    assert not re.search(r"\[selected\s*\]\s+orders\.", clover_list), clover_list
    nc_list = out["$M select tap-commerce-exports --list"]
    assert re.search(r"\[selected\s*\]\s+orders\.", nc_list), nc_list
    assert not re.search(r"\[selected\s*\]\s+customers\.", nc_list), nc_list

    # PostgreSQL: the selected stream equals the truth; the second run created no export.
    orders = next(d for d in NEXTCOMMERCE_STREAMS if d.name == "orders")
    expected = sorted(
        as_key_tuples(sandbox.truth_keys("nextcommerce", orders.export_type, utc(START), utc(END)))
    )
    rows = sorted(pg.query(f"select {', '.join(orders.primary_keys)} from nextcommerce.orders"))
    assert rows == expected, "PostgreSQL nextcommerce.orders differs from the sandbox's truth"
    tables = {
        r[0]
        for r in pg.query(
            "select table_name from information_schema.tables where table_schema = 'nextcommerce'"
        )
    }
    assert tables == {"orders"}, f"only the selected stream is loaded: {tables}"
    pg_run = "$M run tap-commerce-exports target-postgres"
    first, second = [i for i, (c, _, _) in enumerate(steps) if c == pg_run]
    assert exports[first] > exports[first - 1], "the first PostgreSQL run created exports"
    assert exports[second] == exports[first], "the rerun asked for exports again"
    assert len(pg.query("select 1 from nextcommerce.orders")) == len(expected), "the rerun added rows"

    # State as the README shows it, wrapped in singer_state, accepted back by `state set`.
    saved = json.loads((meltano.project / "state.json").read_text())
    assert set(saved) == {"singer_state"}
    partition = saved["singer_state"]["bookmarks"]["orders"]["partitions"][0]
    assert (partition["replication_key"], partition["replication_key_value"]) == ("window_end", END)

    # The production tokens went where the README says (.env) and never to the sandbox.
    dotenv = (meltano.project / ".env").read_text()
    assert NC_TOKEN in dotenv and CLOVER_TOKEN in dotenv and PG_PASSWORD in dotenv
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
