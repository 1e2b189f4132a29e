"""Shared, generic test fixtures.

``local_http``: a factory of real HTTP servers on 127.0.0.1 (port 0, own thread). Each
server answers with a function of the request, and records every request it received,
so tests can assert what did (and did not) reach a host.

``require``: the ONE place that decides what a missing service or install means. A test
that needs something the run is supposed to provide (PostgreSQL, ``.venv-dagster``,
Meltano and its plugins, pyarrow) calls ``require(why_missing)`` (``None``: all there).
On a developer's machine that skips with the reason; in CI (``CI=true``) it FAILS: a CI
run that lacks what it was meant to install is broken, and a green run full of skips
would hide that. Use it for things an install provides, not for what the machine may
lack (an IPv6 loopback keeps its skipif).

The sandbox fixtures the end-to-end specs share live in ``tests/sandbox_fixtures.py``;
``--repeat N`` (run each selected test N times, for ``make stress``) in ``tests/repeat.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest_plugins = ["tests.sandbox_fixtures", "tests.repeat"]

# pytest keeps the assertion-rewritten test modules as bytecode (tests/__pycache__) only
# when the process may write bytecode; with PYTHONDONTWRITEBYTECODE set (as here and in
# many CI images) every xdist worker rewrote and compiled all ~100 spec modules again:
# measured 6.7 s -> 2.2 s of CPU to collect the suite, per worker. Only pytest's own
# processes: the environment (hence every tap, loader and Meltano process) is left as is;
# `make test` compiles the repository's code for those (its `bytecode` target).
sys.dont_write_bytecode = False

#: In CI, what the run was meant to provide must be there (see ``require``).
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


#: Scheduling tiers, longest first: real Meltano/Dagster/PostgreSQL runs (a minute or more
#: each), then release builds (a fresh venv each), then the other end-to-end specs (real
#: tap and sandbox processes, seconds each), then the rest (milliseconds).
_TIERS = ("meltano", "release", "e2e")


def _tier(item: pytest.Item) -> int:
    for rank, marker in enumerate(_TIERS):
        if item.get_closest_marker(marker) is not None:
            return rank
    return len(_TIERS)


#: Modules whose specs share an expensive module- or class-scoped fixture: all their
#: tests go to one xdist worker, so the fixture runs once (see ``pytest_xdist_make_scheduler``).
ONE_WORKER_MODULES = {
    "tests/test_bad_files.py": "`outcomes` runs every bad-file case's tap at once",
    "tests/test_sdk_standard.py": "the SDK's class-scoped runners sync once per class",
    "tests/test_dagster_e2e.py": "a PostgreSQL server, Dagster's database on it, the sandbox",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first (see ``_TIERS``); the sort is stable: within a tier, tests
    keep their order. ``pytest_xdist_make_scheduler`` hands them out in this order."""
    items.sort(key=_tier)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n N`` (xdist's default ``--dist load``): tests go one at a time to whichever
    worker is free, in the order above, so the long ones spread over every worker from the
    start and the short ones fill the end; a module of ``ONE_WORKER_MODULES`` goes to one
    worker whole. xdist's own load scheduling sent the first worker its first ~100 tests at
    once, every Meltano test among them, one after the other: that chain was most of the
    suite's wall time. (xdist's ``--dist loadgroup`` would do the grouping, but its
    ``xdist_group`` marks have no effect with pytest 9.) Any other ``--dist`` is xdist's."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    config.option.loadscopereorder = False  # the order of collection, not by scope size
    return LongestFirst(config, log)


class Require:
    """``require(why_missing_or_None)``; ``require.module(name, what_installs_it)``."""

    def __init__(self, in_ci: bool = IN_CI) -> None:
        self.in_ci = in_ci

    def __call__(self, missing: str | None) -> None:
        """Skip (a developer's machine) or fail (CI) when ``missing`` says what is missing."""
        if missing is None:
            return
        if self.in_ci:
            pytest.fail(f"CI=true and the run lacks what it must provide: {missing}", pytrace=False)
        pytest.skip(missing)

    def module(self, name: str, installed_by: str) -> None:
        """``name`` must be importable (``installed_by`` says what installs it)."""
        if importlib.util.find_spec(name) is None:
            self(f"{name} is missing: {installed_by}")


@pytest.fixture(scope="session")
def require() -> Require:
    """See the module docstring: skip here, fail in CI."""
    return Require()


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: announce this Content-Length instead of the body's real length (then close)
    content_length: int | None = None


class LocalServer:
    """A real HTTP/1.0 server on 127.0.0.1; ``app(request) -> Reply``."""

    def __init__(self, app: Callable[[SeenRequest], Reply]) -> None:
        self.app = app
        self.requests: list[SeenRequest] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = SeenRequest(self.command, self.path, dict(self.headers.items()), body)
                server.requests.append(seen)
                reply = server.app(seen)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                announced = reply.content_length if reply.content_length is not None else len(reply.body)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(reply.body)
                self.wfile.flush()
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def local_http():
    """Factory: ``local_http(app)`` starts a LocalServer; all are closed after the test."""
    servers: list[LocalServer] = []

    def start(app: Callable[[SeenRequest], Reply]) -> LocalServer:
        srv = LocalServer(app)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
