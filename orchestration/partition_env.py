"""A group's accounts and budget as the environment of its `meltano run`.

This is the one place that knows how accounts reach the tap. Meltano reads a plugin's
setting `<setting>` from `<PLUGIN_NAME>_<SETTING>` (non-alphanumerics become `_`), which
outranks meltano.yml, so nothing of a group is written to disk.

A group's accounts reach the tap as ONE variable, the tap's `accounts` setting as JSON
text (`<PLUGIN>_ACCOUNTS`): the tap parses it itself and, on a mistake, names the place to
fix without quoting the text (it holds tokens). Each account object is the tap's own keys
for one account; a key it leaves out is the extractor's top-level setting. The tap keeps
one state partition per (stream, account) inside the group's state id, which is what lets
the regroup command move an account without touching the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from orchestration.groups import ENV_SUFFIX, ExtractorPlan, Group, GroupsFileError, account_key
from orchestration.run_isolation import env_prefix

__all__ = ["ENV_SUFFIX", "accounts_env", "budget_env", "env_prefix", "partition_env", "resolve"]


def resolve(account: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """An account's settings with every `<setting>_env` replaced by that variable's value."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key, value in account.items():
        if key.endswith(ENV_SUFFIX):
            setting = key[: -len(ENV_SUFFIX)]
            if value not in environ:
                raise GroupsFileError(
                    f"account {account_key(account)}: environment variable {value} ({key}) is not set"
                )
            out[setting] = environ[value]
        else:
            out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def accounts_env(group: Group, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The group's accounts as the tap's `accounts` setting (JSON text in one variable)."""
    return {
        env_prefix(group.extractor) + "ACCOUNTS": json.dumps([resolve(a, environ) for a in group.accounts])
    }


def budget_env(plan: ExtractorPlan) -> dict[str, str]:
    """This run's share of the app-wide limits, as the extractor's settings."""
    prefix = env_prefix(plan.extractor)
    return {prefix + name.upper(): value for name, value in plan.run_settings().items()}


def partition_env(
    group: Group, plan: ExtractorPlan, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Everything a group's run adds to the environment: its accounts, then its budget."""
    return {**accounts_env(group, environ), **budget_env(plan)}
