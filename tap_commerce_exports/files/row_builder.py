"""Compile, once per file, the function that turns a CSV row into a typed record.

Why generated code: the per-row work is the whole cost of reading a large export. A
function specialised to the file's header, with its converters bound as locals and the
record written as a dict display with constant keys, does per row only what a
hand-written loop for that exact file would do: unpack the cells, convert the non-empty
ones (a money text seen before is one lookup in its column's cache), build the dict. Anything wrong with a row (wrong cell count, a value the converter
rejects, an empty primary key) raises ``ValueError`` and the caller re-examines that one
row slowly to say precisely what was wrong; good rows pay nothing for diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tap_commerce_exports.files.converters import CACHE_LOOKUPS, Converter

RowBuilder = Callable[[list[str]], dict[str, object]]


class EmptyPrimaryKey(ValueError):
    """Raised inside a row builder when a primary-key cell is empty."""


def _empty_key() -> object:
    raise EmptyPrimaryKey("primary key is empty")


def compile_row_builder(
    columns: Sequence[str],
    converters: Sequence[Converter | None],
    primary_keys: Sequence[str] = (),
) -> RowBuilder:
    """Return ``build(row) -> record`` for this header.

    Column names are embedded with ``repr`` (always a valid literal) and converters are
    passed as default arguments, so no user text is ever executed as code.
    """
    keys = set(primary_keys)
    cells = [f"v{i}" for i in range(len(columns))]
    params = ["row"]
    namespace: dict[str, object] = {"_empty_key": _empty_key}
    entries = []
    for i, (column, converter) in enumerate(zip(columns, converters, strict=False)):
        cell = cells[i]
        if converter is not None:
            params.append(f"c{i}=c{i}")
            namespace[f"c{i}"] = converter
            value = f"c{i}({cell})"
            lookup = CACHE_LOOKUPS.get(converter)
            if lookup is not None:  # a cached text costs a dict lookup, not a call
                params.append(f"g{i}=g{i}")
                namespace[f"g{i}"] = lookup
                value = f"(g{i}({cell}) or {value})"
        else:
            value = cell
        missing = "_empty_key()" if column in keys else "None"
        entries.append(f"        {column!r}: {value} if {cell} else {missing},")
    if "_empty_key()" in "".join(entries):
        params.append("_empty_key=_empty_key")
    source = "\n".join(
        [
            f"def build({', '.join(params)}):",
            f"    {', '.join(cells)}, = row",
            "    return {",
            *entries,
            "    }",
        ]
    )
    exec(compile(source, "<csv row builder>", "exec"), namespace)  # noqa: S102 - see docstring
    return namespace["build"]  # type: ignore[return-value]
