"""Catalog selection on the fast path, pruned exactly as singer-sdk's own path prunes.

Why here: the SDK removes deselected properties inside its per-record message path
(``pop_deselected_record_properties``), which the fast path does not take (see
``sync.py``). So the same rules are applied here, with the per-stream work done once: the
deselected property paths are found in the selection mask when the stream starts, and
a record pays one ``pop`` per deselected path, nothing when none is deselected.

The rules (those of singer-sdk 0.54, checked by tests that run both paths):

* a property is deselected when the catalog's resolved selection says so for its
  breadcrumb (``("properties", "employee", "properties", "name")``); a deselected
  object takes its sub-properties with it;
* records are pruned through nested objects, not inside arrays; the SCHEMA loses the
  same properties (and their ``required`` entries).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

Path = tuple[str, ...]


def deselected_paths(mask: Mapping[tuple[str, ...], bool]) -> tuple[Path, ...]:
    """Property paths the selection mask deselects, outermost only, in a stable order."""
    paths: set[Path] = set()
    for breadcrumb, selected in mask.items():
        if selected or len(breadcrumb) < 2 or len(breadcrumb) % 2:
            continue
        if any(breadcrumb[i] != "properties" for i in range(0, len(breadcrumb), 2)):
            continue  # e.g. inside an array's "items": the SDK does not prune there either
        paths.add(tuple(breadcrumb[1::2]))
    outermost = [p for p in paths if not any(p[:n] in paths for n in range(1, len(p)))]
    return tuple(sorted(outermost))


def selected_schema(schema: Mapping[str, Any], paths: tuple[Path, ...]) -> dict[str, Any]:
    """A copy of ``schema`` without the deselected ``paths``."""
    result = copy.deepcopy(dict(schema))
    for path in paths:
        node: Any = result
        for name in path[:-1]:
            node = node.get("properties", {}).get(name)
            if not isinstance(node, dict):
                break
        else:
            properties = node.get("properties")
            if isinstance(properties, dict) and path[-1] in properties:
                del properties[path[-1]]
                required = node.get("required")
                if isinstance(required, list) and path[-1] in required:
                    required.remove(path[-1])
    return result


def record_pruner(paths: tuple[Path, ...]) -> Callable[[dict[str, Any]], None] | None:
    """``prune(record)`` removing the deselected ``paths`` in place; None if there are none."""
    if not paths:
        return None
    top = tuple(p[0] for p in paths if len(p) == 1)
    nested = tuple(p for p in paths if len(p) > 1)

    def prune(record: dict[str, Any]) -> None:
        for name in top:
            record.pop(name, None)
        for path in nested:
            node: Any = record
            for name in path[:-1]:
                node = node.get(name)
                if type(node) is not dict:
                    break
            else:
                node.pop(path[-1], None)

    return prune
