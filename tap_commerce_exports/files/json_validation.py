"""A JSON-schema subset compiled once into plain Python checks.

Why not ``jsonschema`` per record: a Clover file holds up to 1000 nested orders, and a
generic validator re-interprets the schema for every one of them. The tap's schemas only
use ``type``, ``properties``, ``required``, ``additionalProperties`` and ``items``; this
module turns exactly those into closures once per schema, so checking a record costs a
few type lookups per present field. Keywords outside that subset are ignored (they never
appear in the tap's own schemas).

Type rules follow draft 7: ``integer`` is any number with no fraction (``3``, ``3.0``)
but never a boolean; ``number`` is any int/float/Decimal but never a boolean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from tap_commerce_exports.errors import json_type_name

PathPart = str | int


class Problem(NamedTuple):
    """Where a value breaks the schema: the path to it, the value, and why."""

    path: tuple[PathPart, ...]
    value: object
    reason: str

    def dotted_path(self) -> str:
        """``lineItems.elements[0].price`` style path ('' for the record itself)."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


Check = Callable[[object], "Problem | None"]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "string": (str,),
    "object": (dict,),
    "array": (list,),
}


def _type_test(types: list[str]) -> Callable[[object], bool] | None:
    """A predicate for the allowed JSON types (None: any type is allowed)."""
    if not types:
        return None
    allowed: set[type] = set()
    for name in types:
        allowed.update(_PY_TYPES.get(name, ()))
    integral_numbers = "integer" in types and float not in allowed
    if not integral_numbers:
        return lambda value: type(value) in allowed

    def test(value: object) -> bool:
        kind = type(value)
        if kind in allowed:
            return True
        # draft 7: 3.0 is an integer. Decimal comes from the reader's float_hook.
        return kind in (float, Decimal) and value == int(value)  # type: ignore[call-overload]

    return test


def compile_check(schema: Mapping[str, Any]) -> Check:
    """Compile one (sub)schema into ``check(value) -> Problem | None``."""
    raw_type = schema.get("type")
    types = [raw_type] if isinstance(raw_type, str) else list(raw_type or [])
    type_ok = _type_test(types)
    expected = "expected " + " or ".join(types) if types else ""

    properties = {name: compile_check(sub) for name, sub in (schema.get("properties") or {}).items()}
    required = tuple(schema.get("required") or ())
    additional = schema.get("additionalProperties", True)
    extra_check = compile_check(additional) if isinstance(additional, Mapping) else None
    extras_forbidden = additional is False
    items_schema = schema.get("items")
    item_check = compile_check(items_schema) if isinstance(items_schema, Mapping) else None
    inspects_objects = bool(properties or required or extra_check or extras_forbidden)

    def check(value: object) -> Problem | None:
        if type_ok is not None and not type_ok(value):
            return Problem((), value, f"{expected}, got {json_type_name(value)}")
        if inspects_objects and type(value) is dict:
            for name in required:
                if name not in value:
                    return Problem((name,), None, "required property is missing")
            for name, member in value.items():
                sub = properties.get(name)
                if sub is None:
                    if extras_forbidden:
                        return Problem((name,), member, "property not allowed")
                    sub = extra_check
                    if sub is None:
                        continue
                problem = sub(member)
                if problem is not None:
                    return Problem((name, *problem.path), problem.value, problem.reason)
        elif item_check is not None and type(value) is list:
            for index, member in enumerate(value):
                problem = item_check(member)
                if problem is not None:
                    return Problem((index, *problem.path), problem.value, problem.reason)
        return None

    return check
