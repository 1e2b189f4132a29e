"""The sandbox and the tap's account settings, shared by the end-to-end specs.

Why one place: a dozen spec modules each started "their" sandbox, reset "their" fault
switches and wrote the same account settings; a change to how an account is addressed
(or a new sandbox setting to reset) had to be made in each. Here a module says only how
its sandbox differs from the default, in one module constant::

    SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000)

and its tests ask for the ``sandbox`` fixture: one sandbox per module (started before the
first test that asks for it, stopped after the module), on a free port of 127.0.0.1.
Around each test that uses it, every setting the test changed (with ``sandbox.control``,
or a counting fault that fired) is put back to the module's values, so no test sees
another's switches. ``SANDBOX_AFTER_EACH`` (optional) adds control actions to take after
each test, e.g. ``dict(complete_exports=True)``.

:func:`account_config` is the tap's account part of a config for the sandbox's account
(provider, URL, token, store or merchant); each module adds its own range, windows and
limits, which are part of what it specifies.

Registered as a plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from commerce_sandbox import SandboxServer

#: settings fixed when the server starts (they cannot be put back by ``control``)
_FIXED = frozenset({"host", "port"})


def start_sandbox(**settings: Any) -> SandboxServer:
    """A started sandbox on a free loopback port with ``settings`` (``SandboxConfig`` fields)."""
    # Imported here, not at the top: collecting a spec that never starts a sandbox must
    # not depend on the sandbox package.
    from commerce_sandbox import SandboxConfig, SandboxServer

    return SandboxServer(SandboxConfig(**{**settings, "port": 0})).start()


@pytest.fixture(scope="module")
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """This module's sandbox, with the module's ``SANDBOX_SETTINGS``."""
    server = start_sandbox(**getattr(request.module, "SANDBOX_SETTINGS", {}))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _restore_sandbox_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Puts back the module's sandbox settings after each test that used the sandbox."""
    if "sandbox" not in request.fixturenames:
        yield
        return
    server: SandboxServer = request.getfixturevalue("sandbox")
    restore_settings(server)
    yield
    restore_settings(server, **getattr(request.module, "SANDBOX_AFTER_EACH", {}))


def restore_settings(server: SandboxServer, **actions: Any) -> None:
    """Sends the sandbox back to the settings it started with (only those that changed,
    so a limit that did not change keeps its rate-limit history), plus ``actions``."""
    initial = _initial(server)
    now = server.config.to_dict()
    changed = {k: v for k, v in initial.items() if k not in _FIXED and now.get(k) != v}
    if changed or actions:
        server.control(**changed, **actions)


def _initial(server: SandboxServer) -> dict[str, Any]:
    """The settings ``server`` started with (remembered on first use, before any test ran)."""
    remembered: dict[str, Any] | None = getattr(server, "_spec_initial_settings", None)
    if remembered is None:
        remembered = server.config.to_dict()
        server._spec_initial_settings = remembered  # type: ignore[attr-defined]
    return remembered


def account_config(sandbox: SandboxServer, provider: str) -> dict[str, Any]:
    """The tap settings that name the sandbox's account for ``provider``: its API URL,
    token and store (Next Commerce) or merchant and region (Clover)."""
    cfg = sandbox.config
    if provider == "nextcommerce":
        return {
            "provider": "nextcommerce",
            "api_url": sandbox.api_url,
            "access_token": cfg.token,
            "store": cfg.store,
        }
    if provider == "clover":
        return {
            "provider": "clover",
            "api_url": sandbox.clover_url,
            "access_token": cfg.token,
            "merchant_id": cfg.merchant_id,
            "region": "sandbox",
        }
    raise ValueError(f"the sandbox has no account for provider {provider!r}")
