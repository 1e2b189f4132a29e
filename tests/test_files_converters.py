"""Cell text -> typed values, one converter per schema property type."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tap_commerce_exports.files import csv_converter, utc_instant_text

INTEGER = {"type": ["integer", "null"]}
NUMBER = {"type": ["number", "null"]}
BOOLEAN = {"type": ["boolean", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
DATE = {"type": ["string", "null"], "format": "date"}


def convert(schema: dict, text: str) -> object:
    converter = csv_converter(schema)
    assert converter is not None
    return converter(text)


# -- which converter ---------------------------------------------------------------


def test_plain_strings_need_no_converter() -> None:
    assert csv_converter({"type": ["string", "null"]}) is None
    assert csv_converter({"type": "string", "format": "uri"}) is None


def test_a_property_without_a_type_keeps_its_text() -> None:
    assert csv_converter({}) is None


def test_type_may_be_a_single_name_or_a_list_with_null() -> None:
    assert convert({"type": "integer"}, "5") == 5
    assert convert({"type": ["null", "integer"]}, "5") == 5


def test_ambiguous_type_lists_keep_the_text() -> None:
    assert csv_converter({"type": ["string", "integer"]}) is None


# -- integers ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("42", 42), ("-7", -7), ("+3", 3)])
def test_integers_are_ascii_digits_with_an_optional_sign(text: str, value: int) -> None:
    assert convert(INTEGER, text) == value


@pytest.mark.parametrize("text", ["1.5", " 7", "7 ", "1_000", "1e3", "seven", "²", "١٢", "-", ""])
def test_anything_else_is_not_an_integer(text: str) -> None:
    with pytest.raises(ValueError, match="not an integer"):
        convert(INTEGER, text)


# -- numbers (money) -------------------------------------------------------------------


def test_money_is_an_exact_decimal_not_a_float() -> None:
    a, b = convert(NUMBER, "0.10"), convert(NUMBER, "0.20")
    assert isinstance(a, Decimal)
    assert a + b == Decimal("0.30")


def test_money_keeps_its_scale() -> None:
    assert str(convert(NUMBER, "12.50")) == "12.50"
    assert convert(NUMBER, "-0.01") == Decimal("-0.01")


def test_numbers_may_use_an_exponent() -> None:
    assert convert(NUMBER, "1.5e3") == Decimal("1500")


@pytest.mark.parametrize(
    "text", ["NaN", "nan", "Infinity", "-inf", "sNaN", "1,50", " 1", "1_0", "$5", ".", "١"]
)
def test_non_finite_or_decorated_numbers_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal"):
        convert(NUMBER, text)


def test_integer_or_number_types_convert_as_exact_numbers() -> None:
    assert convert({"type": ["integer", "number", "null"]}, "2.5") == Decimal("2.5")


# -- booleans ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "t", "T", "yes", "YES", "1"])
def test_true_spellings(text: str) -> None:
    assert convert(BOOLEAN, text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "False", "f", "F", "no", "No", "0"])
def test_false_spellings(text: str) -> None:
    assert convert(BOOLEAN, text) is False


@pytest.mark.parametrize("text", ["2", "on", "maybe", " true"])
def test_other_text_is_not_a_boolean(text: str) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        convert(BOOLEAN, text)


# -- date-times -------------------------------------------------------------------------


def test_canonical_date_times_are_kept_exactly_as_written() -> None:
    for text in (
        "2024-03-01T10:00:00Z",
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T10:00:00.5-04:30",
        "2024-03-01T10:00:00.123456+00:00",
    ):
        assert convert(DATETIME, text) == text


def test_offsets_are_kept_and_name_the_same_instant() -> None:
    texts = [
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T10:00:00Z",
        "2024-03-01 05:30:00-04:30",
        "2024-03-01T10:00:00+00:00",
        "2024-03-01T10:00:00",
    ]
    instants = {datetime.fromisoformat(convert(DATETIME, t)) for t in texts}
    assert instants == {datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)}


def test_a_space_separator_becomes_t_and_keeps_its_offset() -> None:
    assert convert(DATETIME, "2024-12-31 23:30:00-01:00") == "2024-12-31T23:30:00-01:00"


def test_naive_date_times_are_taken_as_utc() -> None:
    assert convert(DATETIME, "2024-03-01 10:00:00") == "2024-03-01T10:00:00+00:00"


def test_non_canonical_spellings_are_rerendered_as_rfc3339() -> None:
    assert convert(DATETIME, "2024-03-01 10:00:00.5Z") == "2024-03-01T10:00:00.500000+00:00"


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-01",
        "01/03/2024 10:00",
        "2024-13-01T00:00:00Z",
        "2024-03-01T25:00:00",
        "yesterday",
        "2024-03-01X10:00:00",
    ],
)
def test_text_that_is_not_an_iso_date_time_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="date-time"):
        convert(DATETIME, text)


def test_an_instant_outside_the_representable_years_in_utc_is_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        convert(DATETIME, "0001-01-01T00:00:00+01:00")


def test_utc_instant_text_renders_an_instant_in_utc() -> None:
    bound = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_instant_text(bound) == "2024-03-01T10:00:00+00:00"
    assert utc_instant_text(datetime(2024, 3, 1, 10, 0)) == "2024-03-01T10:00:00+00:00"


# -- dates -------------------------------------------------------------------------------


def test_dates_stay_year_month_day() -> None:
    assert convert(DATE, "2024-02-29") == "2024-02-29"


@pytest.mark.parametrize("text", ["2023-02-29", "20240229", "2024-02-29T00:00:00Z", "29/02/2024"])
def test_impossible_or_differently_spelled_dates_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="date"):
        convert(DATE, text)


# -- JSON columns ------------------------------------------------------------------------


def test_object_and_array_properties_hold_json_text() -> None:
    assert convert({"type": ["array", "null"]}, '["a", 1.5]') == ["a", Decimal("1.5")]
    with pytest.raises(ValueError, match="not JSON"):
        convert({"type": "object"}, "{oops")
