"""JsonElementsFileReader: a Clover export file, {"elements": [...]}, as validated records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tap_commerce_exports.errors import InvalidFile, InvalidRecord
from tap_commerce_exports.files import JsonElementsFileReader, WindowFilter, json_reader

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "tap_commerce_exports" / "schemas" / "clover"
PAYMENTS = json.loads((SCHEMA_DIR / "payments.json").read_text())
ORDERS = json.loads((SCHEMA_DIR / "orders.json").read_text())


def write(tmp_path: Path, content: object, name: str = "payments-1.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def raise_it(error: InvalidRecord) -> None:
    raise error


def reader(
    path: Path,
    schema: dict = PAYMENTS,
    *,
    on_invalid=raise_it,  # noqa: ANN001
    window: WindowFilter | None = None,
    primary_keys: Sequence[str] = ("id",),
) -> JsonElementsFileReader:
    return JsonElementsFileReader(
        path,
        schema,
        stream="payments",
        file_label="payments-1.json",
        on_invalid=on_invalid,
        window=window,
        primary_keys=primary_keys,
    )


def payment(**fields: object) -> dict:
    base = {
        "id": "PAY1",
        "amount": 1250,
        "tipAmount": 0,
        "createdTime": 1_700_000_000_000,
        "tender": {"id": "T1", "label": "Credit Card", "enabled": True},
        "cardTransaction": {"last4": "4242", "type": "AUTH", "extra": {"cvmResult": "SIGNATURE"}},
        "order": {"id": "ORD1"},
    }
    base.update(fields)
    return base


# -- records ---------------------------------------------------------------------------


def test_elements_are_yielded_as_they_are_with_clover_field_names(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment()]})
    with reader(path) as r:
        assert list(r) == [payment()]


def test_fields_the_schema_does_not_know_are_kept_and_listed(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(brandNewField={"x": 1})]})
    with reader(path) as r:
        assert r.unknown_columns == ["brandNewField"]
        assert list(r)[0]["brandNewField"] == {"x": 1}


def test_columns_are_the_sorted_union_of_top_level_keys(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [{"id": "a", "note": "x"}, {"id": "b", "amount": 1}]})
    with reader(path) as r:
        assert r.columns == ["amount", "id", "note"]


def test_numbers_with_a_fraction_are_exact_decimals_not_floats(tmp_path: Path) -> None:
    path = write(tmp_path, '{"elements": [{"id": "a", "cardTransaction": {"extra": {"rate": 0.10}}}]}')
    [record] = list(reader(path))
    assert record["cardTransaction"]["extra"]["rate"] == Decimal("0.10")


def test_a_file_with_no_elements_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": []})
    with reader(path, window=WindowFilter("createdTime", 0, 1)) as r:
        assert list(r) == []
        assert r.window_column is None


def test_nested_orders_with_line_items_and_payments_validate(tmp_path: Path) -> None:
    order = {
        "id": "ORD1",
        "total": 2500,
        "createdTime": 1,
        "state": "locked",
        "employee": {"id": "E1"},
        "lineItems": {"elements": [{"id": "L1", "name": "Latte", "price": 450, "printed": False}]},
        "payments": {"elements": [{"id": "P1", "amount": 2500, "tender": {"id": "T"}}]},
    }
    path = write(tmp_path, {"elements": [order]}, "orders-1.json")
    assert list(reader(path, ORDERS)) == [order]


# -- file-level errors -------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "not json", '{"elements": ['])
def test_text_that_is_not_json_is_an_invalid_file(tmp_path: Path, content: str | bytes) -> None:
    with pytest.raises(InvalidFile, match=r"payments-1\.json: not valid JSON"):
        reader(write(tmp_path, content))


def test_malformed_json_names_the_byte_offset_and_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match=r"not valid JSON: malformed at byte offset 15 \(line 2\)"):
        reader(write(tmp_path, '{"elements": [\n}'))


def test_invalid_utf8_names_the_byte_offset_and_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match=r"payments-1\.json: not valid UTF-8 at byte offset 19 \(line 2\)"):
        reader(write(tmp_path, b'{"elements": [\n"caf\xe9"]}'))


@pytest.mark.parametrize(
    "decoder_error",
    [
        # msgspec >= 0.23 reports bad UTF-8 as a DecodeError in its own words ...
        msgspec.DecodeError("Invalid UTF-8 encoded string"),
        # ... older releases raised the stdlib's UnicodeDecodeError.
        UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte"),
    ],
)
def test_the_message_for_bad_utf8_does_not_depend_on_the_json_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoder_error: Exception
) -> None:
    class Decoder:
        def decode(self, data: bytes) -> object:
            raise decoder_error

    monkeypatch.setattr(json_reader, "_DECODER", Decoder())
    with pytest.raises(InvalidFile) as raised:
        reader(write(tmp_path, b'{"elements": ["caf\xe9"]}'))
    assert str(raised.value) == (
        "payments-1.json: not valid UTF-8 at byte offset 18 (line 1): invalid continuation byte"
    )


def test_a_json_array_instead_of_an_object_is_an_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidFile, match="expected a JSON object"):
        reader(write(tmp_path, [payment()]))


@pytest.mark.parametrize("document", [{}, {"elements": None}, {"elements": {"id": "x"}}, {"results": []}])
def test_an_object_without_an_elements_list_is_an_invalid_file(tmp_path: Path, document: dict) -> None:
    with pytest.raises(InvalidFile, match="no 'elements' list"):
        reader(write(tmp_path, document))


def test_a_utf8_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps({"elements": [payment()]}).encode())
    assert list(reader(path)) == [payment()]


# -- bad elements ---------------------------------------------------------------------------


def test_a_wrongly_typed_field_is_an_invalid_record_naming_element_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(), payment(id="PAY2", amount="12.50")]})
    with pytest.raises(InvalidRecord) as caught:
        list(reader(path))
    error = caught.value
    assert (error.stream, error.file, error.position, error.column, error.value) == (
        "payments",
        "payments-1.json",
        "element 1",
        "amount",
        "12.50",
    )
    assert "expected integer or null, got string" in error.reason


def test_a_boolean_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(amount=True)]})
    with pytest.raises(InvalidRecord, match="got boolean"):
        list(reader(path))


def test_an_integral_number_written_with_a_fraction_is_still_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, '{"elements": [{"id": "a", "amount": 100.0}]}')
    assert list(reader(path))[0]["amount"] == Decimal("100.0")


def test_nested_objects_are_validated_with_a_path_to_the_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(tender={"id": "T", "enabled": "yes"})]})
    with pytest.raises(InvalidRecord) as caught:
        list(reader(path))
    assert caught.value.column == "tender.enabled"


def test_items_of_element_wrappers_are_validated(tmp_path: Path) -> None:
    bad = {"id": "O", "lineItems": {"elements": [{"id": "L1", "price": 1}, {"id": "L2", "price": "1"}]}}
    path = write(tmp_path, {"elements": [bad]}, "orders-1.json")
    with pytest.raises(InvalidRecord) as caught:
        list(reader(path, ORDERS))
    assert caught.value.column == "lineItems.elements[1].price"


def test_a_nested_object_where_an_object_is_declared_must_be_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(order="ORD1")]})
    with pytest.raises(InvalidRecord, match="expected object or null, got string"):
        list(reader(path))


def test_an_element_that_is_not_an_object_is_an_invalid_record(tmp_path: Path) -> None:
    path = write(tmp_path, {"elements": [payment(), "oops"]})
    with pytest.raises(InvalidRecord, match="element 1.*not a JSON object"):
        list(reader(path))


@pytest.mark.parametrize("element", [{"amount": 1}, {"id": None}])
def test_a_missing_or_null_primary_key_is_an_invalid_record(tmp_path: Path, element: dict) -> None:
    path = write(tmp_path, {"elements": [element]})
    with pytest.raises(InvalidRecord, match="primary key is empty") as caught:
        list(reader(path))
    assert caught.value.column == "id"


def test_when_on_invalid_returns_bad_elements_are_skipped_and_counted(tmp_path: Path) -> None:
    errors: list[InvalidRecord] = []
    path = write(tmp_path, {"elements": [payment(id="A"), payment(id="B", amount=[]), payment(id="C")]})
    with reader(path, on_invalid=errors.append) as r:
        assert [p["id"] for p in r] == ["A", "C"]
    assert [e.position for e in errors] == ["element 1"]
    assert (r.rows_read, r.records_rejected) == (3, 1)


# -- window (epoch milliseconds) -------------------------------------------------------------

WINDOW = WindowFilter("createdTime", 1_700_000_000_000, 1_700_086_400_000)


def test_an_element_at_the_window_start_is_kept_and_one_at_the_end_is_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "elements": [
                payment(id="start", createdTime=WINDOW.start),
                payment(id="end", createdTime=WINDOW.end),
            ]
        },
    )
    with reader(path, window=WINDOW) as r:
        assert [p["id"] for p in r] == ["start"]
    assert r.records_out_of_window == 1


def test_elements_without_a_window_value_are_kept_and_counted(tmp_path: Path) -> None:
    element = payment()
    del element["createdTime"]
    path = write(tmp_path, {"elements": [element, payment(id="B", createdTime=None)]})
    with reader(path, window=WINDOW) as r:
        assert len(list(r)) == 2
        assert r.window_column == "createdTime"
    assert r.records_without_window_value == 2


def test_a_file_whose_elements_lack_the_window_field_is_read_whole_trusting_the_server(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, {"elements": [{"id": "a", "modifiedTime": 1}, {"id": "b", "modifiedTime": 2}]})
    with reader(path, window=WINDOW) as r:
        assert r.window_column is None
        assert [e["id"] for e in r] == ["a", "b"]
    assert (r.rows_read, r.records_out_of_window) == (2, 0)


def test_the_window_field_may_be_named_otherwise(tmp_path: Path) -> None:
    window = WindowFilter("createdTime", WINDOW.start, WINDOW.end, ("serverCreated",))
    inside, outside = payment(id="in"), payment(id="out")
    inside["serverCreated"], outside["serverCreated"] = WINDOW.start, WINDOW.end
    path = write(tmp_path, {"elements": [inside, outside]})
    with reader(path, window=window) as r:
        assert [p["id"] for p in r] == ["in"]
        assert r.window_column == "serverCreated"
