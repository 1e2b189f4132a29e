#!/usr/bin/env python3
"""Generate the Next Commerce stream schemas from the provider's own OpenAPI spec.

Why a generator: the export CSVs' column names are not published, but the Admin API's
object models are. The tap types each CSV column by the matching field of the API
object (``total_incl_tax`` is a money string there, so it is a number here). The
generated files are committed; this script documents exactly where they came from and
the repository never needs the spec at run time.

Rules (JSON Schema draft 7, every property nullable unless it is a primary key):

* Only SCALAR fields are kept: a CSV cell cannot hold an object or an array.
  ``$ref`` / ``allOf`` / ``oneOf [X, null]`` wrappers are resolved first, so a reference
  that turns out to be a scalar is kept and one that is an object (``UserInline``) is not.
* integer -> integer; number -> number; boolean -> boolean;
  string + ``format: date-time`` -> string + ``format: date-time``;
  string + ``format: date`` -> string + ``format: date``;
  money/decimal strings (``format: decimal`` or a decimal ``pattern``) -> number, because
  the tap emits them as exact JSON numbers built from :class:`decimal.Decimal`;
  anything else (enums, uris, emails...) -> string.
* Line-item streams get their parent's key (``order_number``, ``subscription_id``...).
* Every stream gets its window field (from ``nextcommerce_streams.py``) as a nullable
  date-time, added when the API object lacks it (line items carry the parent's time).

Usage::

    python scripts/generate_schemas.py [path/to/nextcommerce-admin-2024-04-01.yaml]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover - tooling hint only
    sys.exit("PyYAML is required: pip install pyyaml")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS  # noqa: E402

DEFAULT_SPEC = REPO / "scripts" / "openapi" / "nextcommerce-admin-2024-04-01.yaml"
OUT_DIR = REPO / "tap_commerce_exports" / "schemas"

# stream -> (OpenAPI component, extra parent-key properties {name: json type}).
# Which object an export mirrors is not published; each is the one the export most
# likely serializes: the webhook's FulfillmentResponse for fulfillments (tracking code,
# carrier, location), CartDetail for open carts (created_at and the totals, which Cart
# lacks), and each line export's own line object (FulfillmentOrderLine, not the
# two-field FulfillmentOrderLineItem request body).
STREAM_OBJECTS: dict[str, tuple[str, dict[str, str]]] = {
    "orders": ("Order", {}),
    "order_line_items": ("OrderLine", {"order_number": "string"}),
    "customers": ("User", {}),
    "transactions": ("Transaction", {}),
    "disputes": ("Dispute", {}),
    "subscriptions": ("Subscription", {}),
    "subscription_line_items": ("SubscriptionLine", {"subscription_id": "integer"}),
    "open_carts": ("CartDetail", {}),
    "open_cart_line_items": ("CartLine", {"cart_id": "integer"}),
    "returns": ("Refund", {}),
    "return_line_items": ("RefundLine", {"return_id": "integer"}),
    "fulfillments": ("FulfillmentResponse", {}),
    "fulfillment_line_items": ("FulfillmentOrderLine", {"fulfillment_id": "integer"}),
}

# A pattern that only admits an optionally signed decimal number marks a money field.
_DECIMAL_PATTERN = re.compile(r"^\^-\?\\d\{\d*,\d*\}\(\?:\\\.\\d\{\d*,\d*\}\)\?\$$")


def _resolve(node: dict[str, Any], components: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Strip ``$ref``/``allOf``/``oneOf``-with-null wrappers; return (schema, nullable)."""
    nullable = False
    for _ in range(20):  # wrappers nest a few levels at most; bound it anyway
        if "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        elif "oneOf" in node or "anyOf" in node:
            options = node.get("oneOf") or node.get("anyOf")
            non_null = [o for o in options if o.get("type") != "null"]
            nullable = nullable or len(non_null) < len(options)
            if len(non_null) != 1:
                return {}, nullable  # {} or a real union: not a scalar we can type
            node = non_null[0]
        else:
            break
    return node, nullable


def _json_types(node: dict[str, Any]) -> list[str]:
    raw = node.get("type")
    if raw is None:
        return []
    return [raw] if isinstance(raw, str) else list(raw)


def is_money(node: dict[str, Any]) -> bool:
    """Money/decimal strings: ``format: decimal`` or a decimal-number ``pattern``."""
    return node.get("format") == "decimal" or bool(_DECIMAL_PATTERN.match(node.get("pattern", "")))


def scalar_property(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """The tap's (nullable) property schema for one OpenAPI field, or None if not scalar."""
    node, _ = _resolve(node, components)
    types = [t for t in _json_types(node) if t != "null"]
    if len(types) != 1:
        return None
    kind = types[0]
    if kind in ("integer", "number", "boolean"):
        return {"type": [kind, "null"]}
    if kind != "string":
        return None  # object / array: a CSV cell cannot carry it
    if is_money(node):
        return {"type": ["number", "null"]}
    fmt = node.get("format")
    if fmt in ("date-time", "date"):
        return {"type": ["string", "null"], "format": fmt}
    return {"type": ["string", "null"]}


def stream_schema(stream: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Build one stream's schema from its OpenAPI object."""
    definition = next(d for d in NEXTCOMMERCE_STREAMS if d.name == stream)
    component, parent_keys = STREAM_OBJECTS[stream]
    components = spec["components"]["schemas"]
    obj = components[component]

    properties: dict[str, Any] = {}
    for name, field in obj.get("properties", {}).items():
        prop = scalar_property(field, components)
        if prop is not None:
            title = field.get("title")
            if title:
                prop = {**prop, "description": title}
            properties[name] = prop
    for name, kind in parent_keys.items():
        properties.setdefault(name, {"type": [kind, "null"]})

    window = definition.window_field
    existing = properties.get(window)
    if existing is None or existing.get("format") != "date-time":
        properties[window] = {"type": ["string", "null"], "format": "date-time"}

    for key in definition.primary_keys:
        if key not in properties:
            raise SystemExit(f"{component} has no scalar field for primary key {key!r}")
        types = [t for t in properties[key]["type"] if t != "null"]
        properties[key] = {**properties[key], "type": types[0]}

    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"nextcommerce {stream}",
        "description": (
            f"Next Commerce '{definition.export_type}' export rows. Generated by "
            f"scripts/generate_schemas.py from components.schemas.{component} of the "
            "Admin API OpenAPI spec 2024-04-01 (scalar fields only)."
        ),
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="OpenAPI YAML path")
    parser.add_argument("--out", default=str(OUT_DIR / "nextcommerce"), help="output directory")
    args = parser.parse_args(argv)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster
    spec = yaml.load(Path(args.spec).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe loader
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for definition in NEXTCOMMERCE_STREAMS:
        schema = stream_schema(definition.name, spec)
        target = out / Path(definition.schema_path).name
        target.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(
            f"wrote {target.relative_to(REPO) if target.is_relative_to(REPO) else target}"
            f" ({len(schema['properties'])} properties)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
