"""Keys of a config that are no setting: named, with the closest setting the tap has.

Why: the SDK silently ignores a key it does not know, so a misspelt setting (``lookbak``)
looks like a setting that does nothing; a warning that names the closest one says what
to fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


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
