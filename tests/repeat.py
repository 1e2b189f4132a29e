"""``--repeat N``: run every selected test N times in one process (for ``make stress``).

Why not a dependency: pytest-repeat does the same in a few more lines, and a race spec
repeated under load is the only use; one parametrization is enough. Each run is its own
test id (``[r7]``), so the counts and the failing run show in pytest's summary.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--repeat", type=int, default=1, metavar="N", help="run each selected test N times (make stress)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = metafunc.config.getoption("repeat")
    if count > 1:
        metafunc.fixturenames.append("_repeat_run")
        metafunc.parametrize("_repeat_run", [f"r{i}" for i in range(count)], ids=str, scope="function")
