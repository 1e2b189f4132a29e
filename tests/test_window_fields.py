"""Which names a stream's window (creation-time) column may have: the providers' tables."""

from __future__ import annotations

import json
from importlib import resources

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS


def test_every_next_commerce_stream_looks_for_its_own_field_first_then_every_creation_time_name():
    for d in NEXTCOMMERCE_STREAMS:
        names = d.window_field_names
        assert names[0] == d.window_field
        assert len(set(names)) == len(names)
        assert {"created_at", "date_created", "created", "date_joined"} <= set(names), d.name


def test_no_alias_is_an_instant_other_than_the_creation_time():
    for d in NEXTCOMMERCE_STREAMS:
        assert not {"updated_at", "date_placed", "modified_at", "last_event_date"} & set(d.window_field_names)


def test_every_window_field_is_a_date_time_of_its_schema_so_any_alias_is_typed_like_it():
    for d in NEXTCOMMERCE_STREAMS:
        path = resources.files("tap_commerce_exports").joinpath("schemas", d.schema_path)
        assert json.loads(path.read_text())["properties"][d.window_field]["format"] == "date-time", d.name


def test_clover_keeps_its_published_field_only():
    assert all(d.window_field_names == ("createdTime",) for d in CLOVER_STREAMS)
