"""A stream's JSON schema as DuckDB columns.

Why typed columns instead of whatever DuckDB would infer from a file: inference reads a
sample, so a column that is empty in the first rows of one file becomes VARCHAR there and
DOUBLE in the next, and money inferred as DOUBLE is no longer exact. The schema the tap
sends is the contract: every property becomes one column of one declared type, and every
file (BATCH, or the RECORD buffer) is read with exactly these columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: DECIMAL's widest precision in DuckDB (stored as a 128-bit integer).
MAX_PRECISION = 38
#: TIMESTAMPTZ under the name DuckDB's catalog reports, so that a table's existing
#: column compares equal to the one a schema asks for.
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a DuckDB type as its catalog names it, e.g. "DECIMAL(38,9)", "JSON"

    @property
    def quoted(self) -> str:
        return quote(self.name)


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted: any name a schema can hold, case kept."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def columns_of(schema: Mapping[str, Any], number_scale: int) -> list[Column]:
    """One column per property of ``schema``, in the schema's order."""
    properties = schema.get("properties") or {}
    return [Column(name, duckdb_type(prop, number_scale)) for name, prop in properties.items()]


def duckdb_type(prop: Mapping[str, Any], number_scale: int) -> str:
    """The DuckDB type that holds every value ``prop`` allows, exactly.

    ``number`` -> DECIMAL(38, scale) (the scale of a ``multipleOf`` that is a power of ten,
    else ``number_scale``): money stays exact, never a binary float. ``date-time`` ->
    TIMESTAMPTZ: an instant, whatever offset the value was written in. Objects, arrays and
    properties of several types -> JSON (the value as it came).
    """
    if "anyOf" in prop or "oneOf" in prop:
        members = [m for m in prop.get("anyOf", prop.get("oneOf", [])) if _types(m) != ["null"]]
        if len(members) == 1:
            return duckdb_type(members[0], number_scale)
        return "JSON"
    types = [t for t in _types(prop) if t != "null"]
    if len(types) != 1:
        return "JSON"
    kind = types[0]
    if kind == "string":
        return {"date-time": TIMESTAMPTZ, "date": "DATE", "time": "TIME"}.get(
            str(prop.get("format")), "VARCHAR"
        )
    if kind == "integer":
        return "BIGINT"
    if kind == "number":
        scale = _scale_of(prop.get("multipleOf"), number_scale)
        return f"DECIMAL({MAX_PRECISION},{scale})"
    if kind == "boolean":
        return "BOOLEAN"
    return "JSON"


def _types(prop: Mapping[str, Any]) -> list[str]:
    kind = prop.get("type")
    if kind is None:
        return []
    if isinstance(kind, str):
        return [kind]
    return [str(k) for k in kind]


def _scale_of(multiple_of: Any, default: int) -> int:
    """Digits after the point of a ``multipleOf`` such as 0.01 (-> 2); else ``default``."""
    if multiple_of is None:
        return default
    try:
        step = Decimal(str(multiple_of)).normalize()
    except InvalidOperation:
        return default
    exponent = step.as_tuple().exponent
    if not isinstance(exponent, int) or step != Decimal(1).scaleb(exponent):
        return default  # not a power of ten (0.05): keep the general scale
    return max(0, min(MAX_PRECISION, -exponent))


def json_columns_argument(columns: Sequence[Column]) -> str:
    """``read_json``'s ``columns`` argument: every column with its declared type."""
    return "{" + ", ".join(f"{literal(c.name)}: {literal(c.type)}" for c in columns) + "}"
