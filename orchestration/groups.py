"""The groups file: which accounts sync together, through which extractor, within which budget.

Why a file (read when the code location loads) and static partitions rather than dynamic
ones: a group is configuration a reviewer should see in a diff (who syncs with whom, under
which app's limits), and a static partition set follows the file on every code location
reload without a sensor or an API call to add partitions. Thousands of accounts fit: a
partition is a group, not an account.

    {
      "extractors": {
        "tap-commerce-exports--clover": {
          "concurrent_runs": 2,
          "app_limits": {"app_max_requests_per_second": 50, "app_max_concurrent_requests": 10},
          "secret_env_prefix": "CLOVER_TOKEN_"
        }
      },
      "groups": {
        "clover-a": {"extractor": "tap-commerce-exports--clover",
                     "accounts": [{"merchant_id": "M1", "access_token_env": "CLOVER_TOKEN_M1"}]}
      }
    }

An account object's keys are the tap's own settings for one account (the `accounts`
setting's keys); `<setting>_env` names an environment variable of the Dagster process that
holds the value, so tokens live in the deployment's secrets, not in the file. That
variable must start with its extractor's `secret_env_prefix` (say `"CLOVER_TOKEN_"`):
without the rule a line of the file could send any variable of the Dagster process
(`access_token_env: MELTANO_DATABASE_URI`) to the API host it names as a token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.run_isolation import BASIC_NAMES, BASIC_PREFIXES

#: suffix of an account key whose value is the NAME of an environment variable holding it
ENV_SUFFIX = "_env"
#: A declared `secret_env_prefix`: upper-case, at least three characters before its final `_`.
SECRET_PREFIX = re.compile(r"[A-Z][A-Z0-9_]{2,}_\Z")
VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
#: Prefixes no secret prefix may overlap: Meltano's, Dagster's, PostgreSQL's, the clouds'.
RESERVED_PREFIXES = (*BASIC_PREFIXES, "DAGSTER_", "PG", "AWS_", "GOOGLE_", "AZURE_", "TAP_", "TARGET_")

#: A group's name is its Dagster partition key and its Meltano state id suffix.
GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")  # \Z: `$` would pass a final newline


class GroupsFileError(ValueError):
    """The groups file is unreadable or says something we cannot run; the message says what to fix."""


@dataclass(frozen=True)
class ExtractorPlan:
    """How the runs of one extractor share its app's limits.

    `concurrent_runs` is the Dagster pool's limit: at most that many groups of this
    extractor sync at once, across every run and machine. Each run gets an equal share
    of every app-wide limit (`app_limits`, keyed by the tap setting that bounds one
    process), so the sum over concurrent runs never exceeds the app's limit."""

    extractor: str
    concurrent_runs: int = 1
    app_limits: dict[str, float] = field(default_factory=dict)
    #: what every `<setting>_env` of this extractor's accounts must start with (None: no `_env`)
    secret_env_prefix: str | None = None

    @property
    def pool(self) -> str:
        """The Dagster pool that holds this extractor's runs to `concurrent_runs`."""
        return f"{self.extractor}-app"

    def run_settings(self) -> dict[str, str]:
        """This run's share of each app-wide limit, as tap settings (text, as Meltano passes numbers)."""
        out = {}
        for setting, total in self.app_limits.items():
            share = total / self.concurrent_runs
            whole = max(1, int(share))
            out[setting] = str(whole) if float(total).is_integer() else f"{share:g}"
        return out


@dataclass(frozen=True)
class Group:
    """A partition: accounts that one `meltano run` syncs together, with one state id."""

    name: str
    extractor: str
    accounts: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class GroupsConfig:
    groups: dict[str, Group]
    extractors: dict[str, ExtractorPlan]

    def of_extractor(self, extractor: str) -> list[Group]:
        return [g for g in self.groups.values() if g.extractor == extractor]

    def group_of_account(self, account: str) -> Group | None:
        """The group whose accounts name `account` (any key's value), if any."""
        for group in self.groups.values():
            if any(account in (str(v) for v in acc.values()) for acc in group.accounts):
                return group
        return None


def load_groups(path: str | Path) -> GroupsConfig:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise GroupsFileError(f"groups file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise GroupsFileError(f"groups file {path} is not JSON (line {exc.lineno}): fix its syntax") from None
    return parse_groups(raw, source=str(path))


def parse_groups(raw: Any, source: str = "groups file") -> GroupsConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict) or not raw["groups"]:
        raise GroupsFileError(f'{source}: expected an object with a non-empty "groups" object')
    extractors: dict[str, ExtractorPlan] = {}
    for name, plan in (raw.get("extractors") or {}).items():
        if not isinstance(plan, dict):
            raise GroupsFileError(f"{source}: extractors.{name} must be an object")
        runs = plan.get("concurrent_runs", 1)
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
            raise GroupsFileError(f"{source}: extractors.{name}.concurrent_runs must be a whole number >= 1")
        limits = plan.get("app_limits") or {}
        if not isinstance(limits, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in limits.values()
        ):
            raise GroupsFileError(
                f"{source}: extractors.{name}.app_limits must map settings to positive numbers"
            )
        prefix = plan.get("secret_env_prefix")
        if prefix is not None:
            _check_secret_prefix(prefix, f"{source}: extractors.{name}.secret_env_prefix")
        extractors[name] = ExtractorPlan(name, runs, {k: float(v) for k, v in limits.items()}, prefix)
    groups: dict[str, Group] = {}
    seen_accounts: dict[str, str] = {}
    for name, spec in raw["groups"].items():
        if not GROUP_NAME.match(name):
            raise GroupsFileError(
                f"{source}: group name {name!r} must be lower-case letters, digits, '-' or '_' "
                "(it becomes a Dagster partition key and a Meltano state id suffix)"
            )
        if not isinstance(spec, dict) or not isinstance(spec.get("extractor"), str):
            raise GroupsFileError(f'{source}: groups.{name} needs an "extractor" (a Meltano extractor name)')
        accounts = spec.get("accounts")
        if (
            not isinstance(accounts, list)
            or not accounts
            or not all(isinstance(a, dict) and a for a in accounts)
        ):
            raise GroupsFileError(f"{source}: groups.{name}.accounts must be a non-empty list of objects")
        for account in accounts:
            key = account_key(account)
            if key in seen_accounts:
                raise GroupsFileError(
                    f"{source}: account {key} is in groups {seen_accounts[key]} and {name}: "
                    "an account belongs to one group (its bookmarks live in that group's state)"
                )
            seen_accounts[key] = name
        extractor = spec["extractor"]
        extractors.setdefault(extractor, ExtractorPlan(extractor))
        for account in accounts:
            _check_env_names(account, extractors[extractor], f"{source}: groups.{name}")
        groups[name] = Group(name, extractor, tuple(dict(a) for a in accounts))
    return GroupsConfig(groups, extractors)


def _check_secret_prefix(prefix: Any, where: str) -> None:
    if not isinstance(prefix, str) or not SECRET_PREFIX.match(prefix):
        raise GroupsFileError(
            f"{where} must be upper-case letters, digits and '_', at least 3 before a final '_' (say CLOVER_TOKEN_)"
        )
    if any(prefix.startswith(r) or r.startswith(prefix) for r in RESERVED_PREFIXES) or any(
        n.startswith(prefix) for n in BASIC_NAMES
    ):
        raise GroupsFileError(
            f"{where} cannot be {prefix}: it overlaps Meltano's, Dagster's, a database's, "
            "a cloud's, a plugin's or the system's variables; name one of your own"
        )


def _check_env_names(account: Mapping[str, Any], plan: ExtractorPlan, where: str) -> None:
    """Every `<setting>_env` of `account` names a variable under the extractor's declared prefix."""
    for key, value in account.items():
        if not key.endswith(ENV_SUFFIX):
            continue
        if plan.secret_env_prefix is None:
            raise GroupsFileError(
                f"{where}: account {account_key(account)} sets {key}: declare the variables' prefix "
                f'as extractors.{plan.extractor}.secret_env_prefix (say "CLOVER_TOKEN_")'
            )
        if not isinstance(value, str) or not VARIABLE_NAME.match(value):
            raise GroupsFileError(
                f"{where}: account {account_key(account)}: {key} must be a variable name "
                "(upper-case letters, digits, '_')"
            )
        if not value.startswith(plan.secret_env_prefix) or value == plan.secret_env_prefix:
            raise GroupsFileError(
                f"{where}: account {account_key(account)}: {key} names {value}, which must start with "
                f"{plan.secret_env_prefix} (extractors.{plan.extractor}.secret_env_prefix)"
            )


#: Settings that name an account, in the order we look for them (the tap's own keys).
ACCOUNT_KEYS = ("store", "merchant_id")


def account_key(account: Mapping[str, Any]) -> str:
    """What names an account in logs and in the regroup command: its store or merchant id."""
    for key in ACCOUNT_KEYS:
        if account.get(key):
            return str(account[key])
    raise GroupsFileError(
        f"an account object needs one of {', '.join(ACCOUNT_KEYS)}: got keys {sorted(account)}"
    )
