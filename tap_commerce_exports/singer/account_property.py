"""The account property every record carries: whose store or merchant the row is from.

Why ``_account``: rows of many accounts share one warehouse table, so the account is
part of every stream's primary key (before the object's own key). A file can never bring
a column of that name: every CSV header goes through ``files.headers.normalize_header``,
which strips leading underscores (``_account`` -> ``account``), and the JSON objects of
an export use the platform's own field names, none of which starts with one. Should a
file bring it anyway, it cannot win: the readers never see the property (their schema
lacks it) and the Singer layer sets it on each record after the reader built it, so
the value written is always the account's.

Per record it costs one dict store of a constant (``record[ACCOUNT_PROPERTY] = account``
in the emit loop): nothing per column.
"""

from __future__ import annotations

from typing import Any

ACCOUNT_PROPERTY = "_account"
ACCOUNT_SCHEMA: dict[str, Any] = {
    "type": ["string"],
    "description": "The account the record is from (store subdomain, merchant id); part of the key.",
}


def with_account(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the account property first (a new dict; ``schema`` unchanged)."""
    properties = {ACCOUNT_PROPERTY: dict(ACCOUNT_SCHEMA)}
    properties.update((k, v) for k, v in schema.get("properties", {}).items() if k != ACCOUNT_PROPERTY)
    return dict(schema, properties=properties)


def without_account(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as the file readers see it: without the account property."""
    properties = schema.get("properties", {})
    if ACCOUNT_PROPERTY not in properties:
        return schema
    return dict(schema, properties={k: v for k, v in properties.items() if k != ACCOUNT_PROPERTY})


def key_properties(primary_keys: tuple[str, ...] | list[str]) -> list[str]:
    """A stream's primary key: the account, then the object's own key."""
    return [ACCOUNT_PROPERTY, *(k for k in primary_keys if k != ACCOUNT_PROPERTY)]
