"""The byte pre-scan of an export file: whoever validates the UTF-8 (Python's decoder,
or Arrow's validator for a large file), a broken file gets the same one-line error, with
its byte offset and line, before a single record is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_commerce_exports.errors import InvalidFile
from tap_commerce_exports.files import bytes_check

pytest.importorskip("pyarrow")


def error_of(path: Path) -> str | None:
    try:
        bytes_check.check_utf8_text(path, "orders.csv")
    except InvalidFile as exc:
        return str(exc)
    return None


@pytest.fixture(params=["python", "arrow"])
def validator(request: Any, monkeypatch: Any) -> str:
    """Every spec runs with each validator: ``arrow`` takes files of any size."""
    if request.param == "arrow":
        monkeypatch.setattr(bytes_check, "ARROW_FROM_BYTES", 0)
    return str(request.param)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"a,b\n1,caf\xc3\xa9\n", None),
        (b"a,b\n1,caf\xc3\n", "not valid UTF-8 at byte offset 9 (line 2)"),
        (b"a,b\n1,\xed\xa0\x80\n", "not valid UTF-8 at byte offset 6 (line 2)"),  # a surrogate
        (b"a,b\n1,\xc0\xaf\n", "not valid UTF-8 at byte offset 6 (line 2)"),  # overlong
        (b"a,b\n1,caf\xc3", "file ends inside a multi-byte character"),
        (b"a,b\n1,x\x00y\n", "NUL byte at byte offset 7 (line 2)"),
    ],
)
def test_a_broken_file_gets_the_same_line_from_either_validator(
    tmp_path: Path, validator: str, text: bytes, error: str | None
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(text)
    message = error_of(path)
    if error is None:
        assert message is None
    else:
        assert message is not None and error in message, (validator, message)


def test_a_bad_byte_deep_in_a_large_file_is_found_where_it_is(tmp_path: Path, validator: str) -> None:
    line = "1,café,note\n".encode()
    path = tmp_path / "orders.csv"
    count = (3 << 20) // len(line)
    path.write_bytes(line * count + b"2,\xff\n" + line)
    message = error_of(path)
    assert message is not None
    assert f"byte offset {len(line) * count + 2} (line {count + 1})" in message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=12) | st.text(max_size=6).map(str.encode))
def test_arrow_and_python_agree_on_what_is_utf8(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("any") / "f.csv"
    path.write_bytes(data)
    python = error_of(path)
    saved = bytes_check.ARROW_FROM_BYTES
    bytes_check.ARROW_FROM_BYTES = 0
    try:
        arrow = error_of(path)
    finally:
        bytes_check.ARROW_FROM_BYTES = saved
    assert arrow == python
