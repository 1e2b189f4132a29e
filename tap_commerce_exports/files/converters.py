"""Per-column converters: CSV cell text -> typed record value.

Why converters and not a validator: a CSV file has one type per column, so the reader
looks a converter up ONCE per column per file and then calls it per cell. The converter
both types the value and validates it (a bad value raises ``ValueError``), which is why
the CSV reader never runs jsonschema per record.

Converters receive non-empty cell text; the reader maps an empty cell to ``None`` before
a converter is ever called. ``None`` instead of a converter means "keep the text".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import msgspec

Converter = Callable[[str], object]

UTC = timezone.utc

# Fractional JSON numbers decode as exact Decimals, like money cells.
_JSON = msgspec.json.Decoder(float_hook=Decimal)

# Plain decimal notation, optional exponent. Decimal() alone would also accept
# whitespace, '1_000', non-ASCII digits, 'NaN' and 'Infinity': none is a money value.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_BOOLEANS: dict[str, bool] = {
    "true": True, "t": True, "yes": True, "1": True,
    "false": False, "f": False, "no": False, "0": False,
}


def utc_instant_text(dt: datetime) -> str:
    """The tap's one text form of an instant: ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``.

    Naive datetimes are taken as UTC. Because every instant is rendered in UTC with a
    fixed layout, comparing two such texts as strings compares the instants ('+' sorts
    before '.', so ``...:00+00:00`` < ``...:00.5+00:00``); window bounds use the same form.
    """
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC).isoformat()
    return dt.astimezone(UTC).isoformat()


def to_integer(text: str) -> int:
    """Strict integer: ASCII digits with an optional sign ('1.5', ' 7', '1_000' rejected)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body.isdigit() and body.isascii():
        return int(text)
    raise ValueError("not an integer")


def to_decimal(text: str) -> Decimal:
    """Exact decimal (money): ``'0.10'`` stays ``Decimal('0.10')``, never a float."""
    # Fast path for the usual money text ('-12.50'); anything else takes the regex.
    body = text[1:] if text[:1] in ("+", "-") else text
    if not (body.replace(".", "", 1).isdigit() and body.isascii()):
        if _NUMBER.fullmatch(text) is None:
            raise ValueError("not a decimal number")
    return Decimal(text)


def to_boolean(text: str) -> bool:
    """true/false, t/f, yes/no, 1/0 in any case."""
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError("not a boolean") from None


def to_utc_datetime_text(text: str) -> str:
    """ISO-8601 date-time with any UTC offset (or 'Z', or none = UTC) -> UTC text.

    Accepts a 'T' or space separator and an optional fraction. Requires at least
    ``YYYY-MM-DD?HH:MM``: a bare date or the compact ISO forms are not a timestamp.
    """
    if len(text) < 16 or text[4] != "-" or text[10] not in "T ":
        raise ValueError("not an ISO-8601 date-time")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO-8601 date-time") from None
    if parsed.utcoffset() or text[13:14] != ":" or text[16:17] != ":":
        try:
            return utc_instant_text(parsed)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ValueError("date-time out of range once converted to UTC") from None
    # Already UTC (or naive) with HH:MM:SS: the wall time IS the UTC time, so build the
    # text from slices; datetime.isoformat() on an aware value is several times slower.
    if parsed.microsecond:
        return f"{text[:10]}T{text[11:19]}.{parsed.microsecond:06d}+00:00"
    return f"{text[:10]}T{text[11:19]}+00:00"


def to_date_text(text: str) -> str:
    """``YYYY-MM-DD`` only, checked as a real calendar date."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError("not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("not a YYYY-MM-DD date") from None


def to_json_value(text: str) -> object:
    """A cell of an object/array property holds JSON text; decode it."""
    try:
        return _JSON.decode(text)
    except msgspec.DecodeError:
        raise ValueError("not JSON") from None


def schema_types(property_schema: Mapping[str, Any]) -> set[str]:
    """The non-null JSON types a property allows (``"type"`` as a string or a list)."""
    raw = property_schema.get("type")
    if raw is None:
        return set()
    types = {raw} if isinstance(raw, str) else set(raw)
    types.discard("null")
    return types


def csv_converter(property_schema: Mapping[str, Any]) -> Converter | None:
    """The converter for one schema property, or None to keep the cell text.

    Several non-null types other than integer+number (e.g. ``["string", "integer"]``)
    cannot be decided from text, so the text is kept.
    """
    types = schema_types(property_schema)
    if types == {"integer"}:
        return to_integer
    if types and types <= {"integer", "number"}:
        return to_decimal
    if types == {"boolean"}:
        return to_boolean
    if types == {"string"}:
        fmt = property_schema.get("format")
        if fmt == "date-time":
            return to_utc_datetime_text
        if fmt == "date":
            return to_date_text
        return None
    if types in ({"object"}, {"array"}):
        return to_json_value
    return None
