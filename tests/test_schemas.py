"""Every stream of both providers ships a draft-7 schema that fits the file layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tap_commerce_exports.providers.streams import ExportStreamDefinition

SCHEMAS = Path(__file__).resolve().parent.parent / "tap_commerce_exports" / "schemas"
ALL = [pytest.param(d, id=f"{d.schema_path}") for d in (*NEXTCOMMERCE_STREAMS, *CLOVER_STREAMS)]
NEXT = [pytest.param(d, id=d.name) for d in NEXTCOMMERCE_STREAMS]
CLOVER = [pytest.param(d, id=d.name) for d in CLOVER_STREAMS]


def load(definition: ExportStreamDefinition) -> dict:
    return json.loads((SCHEMAS / definition.schema_path).read_text(encoding="utf-8"))


def types_of(prop: dict) -> set[str]:
    raw = prop["type"]
    return {raw} if isinstance(raw, str) else set(raw)


def walk(schema: dict, path: str = ""):  # noqa: ANN201 - generator of (path, subschema)
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")


@pytest.mark.parametrize("definition", ALL)
def test_every_stream_has_a_valid_draft7_schema_file(definition: ExportStreamDefinition) -> None:
    schema = load(definition)
    Draft7Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is True


@pytest.mark.parametrize("definition", ALL)
def test_primary_keys_are_declared_and_never_null(definition: ExportStreamDefinition) -> None:
    properties = load(definition)["properties"]
    for key in definition.primary_keys:
        assert key in properties
        assert "null" not in types_of(properties[key])


@pytest.mark.parametrize("definition", ALL)
def test_all_other_top_level_properties_are_nullable(definition: ExportStreamDefinition) -> None:
    properties = load(definition)["properties"]
    for name, prop in properties.items():
        if name not in definition.primary_keys:
            assert "null" in types_of(prop), name


@pytest.mark.parametrize("definition", NEXT)
def test_next_commerce_window_fields_are_date_times(definition: ExportStreamDefinition) -> None:
    prop = load(definition)["properties"][definition.window_field]
    assert types_of(prop) == {"string", "null"}
    assert prop["format"] == "date-time"


@pytest.mark.parametrize("definition", CLOVER)
def test_clover_window_fields_are_epoch_millisecond_integers(definition: ExportStreamDefinition) -> None:
    assert types_of(load(definition)["properties"][definition.window_field]) == {"integer", "null"}


@pytest.mark.parametrize("definition", NEXT)
def test_next_commerce_properties_are_scalars_a_csv_cell_can_hold(definition: ExportStreamDefinition) -> None:
    for name, prop in load(definition)["properties"].items():
        assert types_of(prop) - {"null"} <= {"string", "integer", "number", "boolean"}, name


@pytest.mark.parametrize("definition", NEXT)
def test_date_time_looking_fields_carry_the_date_time_format(definition: ExportStreamDefinition) -> None:
    for name, prop in load(definition)["properties"].items():
        if name.endswith("_at") or name.startswith("date_") and name != "date_of_birth":
            assert prop.get("format") == "date-time", name


MONEY = {
    "orders": ["total_incl_tax", "total_excl_tax", "total_tax", "shipping_incl_tax", "total_discount"],
    "order_line_items": ["price_incl_tax", "price_excl_tax", "unit_cost"],
    "customers": ["total_spent"],
    "transactions": ["amount", "amount_available_for_refund"],
    "disputes": ["amount", "report_amount"],
    "subscriptions": ["total"],
    "subscription_line_items": ["price"],
    "open_cart_line_items": ["price_incl_tax", "unit_cost"],
    "returns": ["total_refund_amount", "total_return_incl_tax"],
    "return_line_items": ["amount_incl_tax", "amount_excl_tax"],
}


@pytest.mark.parametrize("definition", NEXT)
def test_money_fields_are_numbers(definition: ExportStreamDefinition) -> None:
    properties = load(definition)["properties"]
    for name in MONEY.get(definition.name, []):
        assert types_of(properties[name]) == {"number", "null"}, name
        assert "format" not in properties[name]


@pytest.mark.parametrize(
    ("stream", "parent_key", "kind"),
    [
        ("order_line_items", "order_number", "string"),
        ("subscription_line_items", "subscription_id", "integer"),
        ("open_cart_line_items", "cart_id", "integer"),
        ("return_line_items", "return_id", "integer"),
        ("fulfillment_line_items", "fulfillment_id", "integer"),
    ],
)
def test_line_item_streams_carry_their_parent_key(stream: str, parent_key: str, kind: str) -> None:
    definition = next(d for d in NEXTCOMMERCE_STREAMS if d.name == stream)
    assert types_of(load(definition)["properties"][parent_key]) == {kind, "null"}


def test_orders_are_keyed_by_their_string_number() -> None:
    orders = next(d for d in NEXTCOMMERCE_STREAMS if d.name == "orders")
    assert load(orders)["properties"]["number"]["type"] == "string"


@pytest.mark.parametrize("definition", CLOVER)
def test_clover_amounts_are_integer_cents_and_times_epoch_ms(definition: ExportStreamDefinition) -> None:
    properties = load(definition)["properties"]
    amounts = {"orders": ["total"], "payments": ["amount", "tipAmount", "taxAmount"]}[definition.name]
    for name in [*amounts, "createdTime", "modifiedTime", "clientCreatedTime"]:
        assert types_of(properties[name]) == {"integer", "null"}, name
    assert properties["id"]["type"] == "string"


@pytest.mark.parametrize("definition", CLOVER)
def test_every_clover_nested_object_is_open_to_new_fields(definition: ExportStreamDefinition) -> None:
    for path, sub in walk(load(definition)):
        if "object" in types_of(sub) if "type" in sub else False:
            assert sub.get("additionalProperties") is True, path


@pytest.mark.parametrize(
    ("stream", "wrapper"),
    [
        ("orders", "lineItems"),
        ("orders", "payments"),
        ("orders", "refunds"),
        ("orders", "discounts"),
        ("orders", "credits"),
        ("payments", "refunds"),
    ],
)
def test_clover_collections_are_elements_wrappers_with_item_schemas(stream: str, wrapper: str) -> None:
    definition = next(d for d in CLOVER_STREAMS if d.name == stream)
    prop = load(definition)["properties"][wrapper]
    assert types_of(prop) == {"object", "null"}
    elements = prop["properties"]["elements"]
    assert types_of(elements) == {"array", "null"}
    assert "id" in elements["items"]["properties"]


def test_generated_next_commerce_schemas_match_the_generator(tmp_path: Path) -> None:
    # The spec is vendored (scripts/openapi/), so this runs in every clone and fails when a
    # schema drifts from what the generator makes of the spec.
    spec = SCHEMAS.parent.parent / "scripts" / "openapi" / "nextcommerce-admin-2024-04-01.yaml"
    import subprocess
    import sys

    script = SCHEMAS.parent.parent / "scripts" / "generate_schemas.py"
    subprocess.run(
        [sys.executable, str(script), str(spec), "--out", str(tmp_path)], check=True, capture_output=True
    )
    for definition in NEXTCOMMERCE_STREAMS:
        generated = json.loads((tmp_path / Path(definition.schema_path).name).read_text())
        assert generated == load(definition), definition.name
