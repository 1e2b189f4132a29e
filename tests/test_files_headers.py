"""Header cells become snake_case schema property names, unique and never empty."""

from __future__ import annotations

import pytest

from tap_commerce_exports.files import normalize_header, normalize_headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Total Incl Tax", "total_incl_tax"),
        ("Order Number", "order_number"),
        ("ID", "id"),
    ],
)
def test_title_case_headers_become_snake_case_properties(header: str, expected: str) -> None:
    assert normalize_header(header) == expected


def test_snake_case_headers_are_kept_as_they_are() -> None:
    assert normalize_header("total_incl_tax") == "total_incl_tax"


def test_camel_case_headers_are_split_at_capitals() -> None:
    assert normalize_header("dateJoined") == "date_joined"
    assert normalize_header("createdTime") == "created_time"
    assert normalize_header("HTTPStatus") == "http_status"


def test_a_byte_order_mark_is_not_part_of_the_name() -> None:
    assert normalize_header("\ufeffid") == "id"


def test_surrounding_and_repeated_spaces_collapse_to_one_underscore() -> None:
    assert normalize_header(" Gift  Message ") == "gift_message"


def test_punctuation_becomes_a_separator_and_is_stripped_at_the_ends() -> None:
    assert normalize_header("Order #") == "order"
    assert normalize_header("Price (excl. tax)") == "price_excl_tax"
    assert normalize_header("a--b__c") == "a_b_c"


def test_unicode_letters_are_kept_and_lower_cased() -> None:
    assert normalize_header("Prénom Client") == "prénom_client"
    assert normalize_header("Straße") == "straße"


def test_a_header_of_only_punctuation_normalizes_to_empty() -> None:
    assert normalize_header("#") == ""


def test_empty_headers_are_named_by_their_1_based_position() -> None:
    assert normalize_headers(["id", "", "#"]) == ["id", "column_2", "column_3"]


def test_duplicate_headers_get_numbered_suffixes_so_no_column_is_merged() -> None:
    assert normalize_headers(["Total", "total", "TOTAL"]) == ["total", "total_2", "total_3"]


def test_a_suffix_never_collides_with_a_real_header() -> None:
    names = normalize_headers(["a", "a", "a_2"])
    assert len(set(names)) == 3
    assert names[:2] == ["a", "a_2"]
