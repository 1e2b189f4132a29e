"""What ``--about`` and ``--help`` say of the tap, where the SDK's words are not ours.

Why: the SDK's text form of ``--about`` lists each setting's name, type and variable
only, so a person reading it cannot tell what is required or what a setting defaults to;
its ``--help`` says ``--test`` syncs a record per stream, which here would create an
export per stream (ours checks access and creates none). And a misspelt setting in a
config file is silently ignored by the SDK: :func:`unknown_settings` names it, with the
closest setting the tap has.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

TEST_HELP = (
    "Use --test to check the credentials and the account of every configured account "
    "through the API, creating no export (the SDK's default would sync a record per "
    "stream: an export per stream). Use --test=schema to print the schemas."
)


def unknown_settings(config: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """One warning per key of ``config`` that is no setting: the key, and the closest
    setting's name when one is close (``lookbak`` -> ``lookback``)."""
    names = sorted(known)
    lines = []
    for key in sorted(set(config) - set(names)):
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        lines.append(f"unknown setting '{key}'{hint}: ignored")
    return lines


def _default_text(prop: Mapping[str, Any]) -> str:
    default = prop.get("default")
    if default is not None:
        return str(default).lower() if isinstance(default, bool) else str(default)
    return ""


def about_text(info: Mapping[str, Any], env_var_prefix: str) -> str:
    """``--about``'s text form: the SDK's header, then each setting with its type,
    whether it is required, its default, its environment variable and its description."""
    lines = [
        f"Name: {info['name']}",
        f"Description: {' '.join(str(info['description']).split())}",
        f"Version: {info['version']}",
        f"SDK Version: {info['sdk_version']}",
    ]
    if info.get("supported_python_versions"):
        lines.append("Supported Python Versions: " + ", ".join(info["supported_python_versions"]))
    lines.append("Capabilities: " + ", ".join(str(c) for c in info["capabilities"]))
    schema = info["settings"]
    required = set(schema.get("required") or [])
    lines.append("Settings (* = required):")
    for name, prop in schema.get("properties", {}).items():
        types = prop.get("type") or []
        kind = "/".join(t for t in ([types] if isinstance(types, str) else types) if t != "null")
        facts = [kind or "any"]
        if prop.get("enum"):
            facts.append("one of " + ", ".join(str(v) for v in prop["enum"]))
        default = _default_text(prop)
        facts.append(f"default {default}" if default else "no default")
        if prop.get("secret"):
            facts.append("secret")
        lines.append(f"  {'*' if name in required else '-'} {name} ({'; '.join(facts)})")
        lines.append(f"      env: {env_var_prefix}{name.upper()}")
        description = " ".join(str(prop.get("description") or "").split())
        if description:
            lines.append(f"      {description}")
    return "\n".join(lines)
