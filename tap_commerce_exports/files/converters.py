"""Per-column converters: CSV cell text -> typed record value.

Why converters and not a validator: a CSV file has one type per column, so the reader
looks a converter up ONCE per column per file and then calls it per cell. The converter
both types the value and validates it (a bad value raises ``ValueError``), which is why
the CSV reader never runs jsonschema per record.

Converters receive non-empty cell text; the reader maps an empty cell to ``None`` before
a converter is ever called. ``None`` instead of a converter means "keep the text".

Money (the one home of the money rule): money is never a float. A schema ``number`` is
an exact :class:`~decimal.Decimal` — a CSV cell through :func:`to_decimal` (plain decimal
notation only), a fractional JSON number through ``float_hook=Decimal`` (here and in
``json_reader.py``) — and is written as an exact JSON number by ``singer/output.py``. A
provider that sends integer minor units (cents) declares those fields ``integer`` in its
schemas and they stay integers: the tap never rescales a provider's amounts.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone, tzinfo
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
    "true": True,
    "t": True,
    "yes": True,
    "1": True,
    "false": False,
    "f": False,
    "no": False,
    "0": False,
}


def utc_instant_text(dt: datetime) -> str:
    """An instant as UTC text ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`` (naive = UTC)."""
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


def datetime_converter(zone: tzinfo = UTC, naive_seen: Callable[[], None] | None = None) -> Converter:
    """The date-time converter of one column: ISO-8601 text -> RFC 3339 text, validated,
    the instant AND its offset kept; a text without an offset is read in ``zone``.

    Why not re-render every value in UTC: the offset a store wrote is information, the
    text already is exact RFC 3339 in the usual case, and re-rendering an aware datetime
    costs ~4x the parse (it was 45% of the record path's CPU on 200k orders). Instants
    are compared as instants where the tap compares them (the window filter parses).

    Why a zone per column, not per record: which zone a store's naive timestamps are in
    is a fact of the store (its ``timezone``, or the ``file_timezone`` setting), decided
    once per file; ``naive_seen`` is called for each naive text (the slow path only), so
    the sync can warn once when it had to guess UTC.

    Accepted: a 'T' or space separator, an optional fraction, 'Z' or +-HH:MM, or no
    offset (= ``zone``). Canonical input comes back unchanged; other accepted forms (space
    separator, no offset, lower-case 'z', offsets without a colon) are re-rendered.
    Requires at least ``YYYY-MM-DD?HH:MM``: a bare date or compact forms are refused.
    """

    def to_datetime_text(text: str) -> str:
        if len(text) < 16 or text[4] != "-" or text[10] not in "T ":
            raise ValueError("not an ISO-8601 date-time")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO-8601 date-time") from None
        if parsed.tzinfo is None:
            if naive_seen is not None:
                naive_seen()
            parsed = parsed.replace(tzinfo=zone)
            if zone is UTC:
                return parsed.isoformat()
        if parsed.year in (1, 9999):  # the instant must exist in UTC too (targets convert)
            try:
                parsed.astimezone(UTC)
            except OverflowError:
                raise ValueError("date-time out of range once converted to UTC") from None
        if (
            text[10] == "T"
            and text[13] == ":"
            and (text[-1] == "Z" or (text[-6] in "+-" and text[-3] == ":"))
        ):
            return text
        return parsed.isoformat()

    return to_datetime_text


#: The converter of a date-time column whose naive texts are UTC.
to_datetime_text = datetime_converter()


def is_date_time(property_schema: Mapping[str, Any]) -> bool:
    """Whether a property is a date-time text (its converter is a :func:`datetime_converter`)."""
    return schema_types(property_schema) == {"string"} and property_schema.get("format") == "date-time"


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


#: Distinct texts remembered per money column and file. Money columns repeat a lot
#: (taxes, shipping, discounts, "0.00"), and a dict hit costs ~0.1 us against ~0.6 us
#: for a checked Decimal; the bound keeps memory flat on columns of unique values.
DECIMAL_CACHE_SIZE = 8192


def cached_decimal_converter() -> Converter:
    """A :func:`to_decimal` for ONE column of one file, remembering repeated texts.

    Safe because ``Decimal`` values are immutable; a bad text raises before it is stored.
    """
    cache: dict[str, Decimal] = {}

    def convert(text: str) -> Decimal:
        try:
            return cache[text]
        except KeyError:
            value = to_decimal(text)
            if len(cache) < DECIMAL_CACHE_SIZE:
                cache[text] = value
            return value

    CACHE_LOOKUPS[convert] = cache.get
    return convert


#: converter -> its cache's ``get``: the row builder looks a text up with that C call
#: first and calls the converter only on a miss (~0.1 us saved per money cell: a Python
#: call with a ``try`` costs more than the lookup itself). Weak keys: a file's
#: converters go when its reader goes.
CACHE_LOOKUPS: weakref.WeakKeyDictionary[Converter, Callable[[str], object]] = weakref.WeakKeyDictionary()


def schema_types(property_schema: Mapping[str, Any]) -> set[str]:
    """The non-null JSON types a property allows (``"type"`` as a string or a list)."""
    raw = property_schema.get("type")
    if raw is None:
        return set()
    types = {raw} if isinstance(raw, str) else set(raw)
    types.discard("null")
    return types


#: What a column's cells are, decided once from its property schema: the converter's
#: kind (:func:`csv_converter`) and what the columnar reader (``csv_columns.py``) matches
#: it with. None: the cell text is kept.
ColumnKind = str | None


def column_kind(property_schema: Mapping[str, Any]) -> ColumnKind:
    """``"integer"``, ``"decimal"``, ``"boolean"``, ``"date-time"``, ``"date"``,
    ``"json"``, or None (keep the text).

    Several non-null types other than integer+number (e.g. ``["string", "integer"]``)
    cannot be decided from text, so the text is kept.
    """
    types = schema_types(property_schema)
    if types == {"integer"}:
        return "integer"
    if types and types <= {"integer", "number"}:
        return "decimal"
    if types == {"boolean"}:
        return "boolean"
    if types == {"string"}:
        fmt = property_schema.get("format")
        if fmt in ("date-time", "date"):
            return str(fmt)
        return None
    if types in ({"object"}, {"array"}):
        return "json"
    return None


def csv_converter(
    property_schema: Mapping[str, Any],
    zone: tzinfo = UTC,
    naive_seen: Callable[[], None] | None = None,
) -> Converter | None:
    """The converter for one schema property (its :func:`column_kind`), or None to keep
    the cell text; a date-time's naive texts are read in ``zone`` (see
    :func:`datetime_converter`)."""
    kind = column_kind(property_schema)
    if kind == "integer":
        return to_integer
    if kind == "decimal":
        return cached_decimal_converter()
    if kind == "boolean":
        return to_boolean
    if kind == "date-time":
        return (
            to_datetime_text if zone is UTC and naive_seen is None else datetime_converter(zone, naive_seen)
        )
    if kind == "date":
        return to_date_text
    if kind == "json":
        return to_json_value
    return None
