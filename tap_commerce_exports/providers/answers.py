"""Reading fields of a provider's JSON answer without trusting their types.

Why a module of its own: an API answer is input from a peer, and a malformed field
(``"percentComplete": 1e999``, a list where an id belongs, ``"exportUrls": "x"``) must
end as ONE clear line naming the export and the field, never as an ``OverflowError`` or
``AttributeError`` traceback from deep inside a status parser. The messages never echo
the offending value (only its JSON type), so a hostile answer cannot inject text into
the log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tap_commerce_exports.http.api_client import ApiError

#: Longest id or status text accepted: real ones are short; this keeps a hostile answer
#: from filling log lines and file names.
MAX_TEXT = 200


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def malformed(what: str, field: str, problem: str) -> ApiError:
    """The one line for a malformed field of an answer about ``what`` (e.g. 'export 12')."""
    return ApiError(f"{what}: the API answered a malformed '{field}' ({problem}); check 'api_url'")


def id_problem(value: object) -> str | None:
    """What breaks the id rules in ``value`` (None: it is an id): a non-empty string or
    whole number, at most ``MAX_TEXT`` printable characters. The same rules hold for an id
    an API answers and for one a STATE saved: both end in log lines and requests."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"{json_type(value)}, expected a string or integer"
    text = str(value)
    if not text or len(text) > MAX_TEXT or not text.isprintable():
        return f"{len(text)} characters, expected a short printable id"
    return None


def export_id_of(body: Mapping[str, Any], field: str = "id") -> str:
    """The export's id: a non-empty string or whole number of reasonable length."""
    value = body.get(field)
    problem = id_problem(value)
    if problem is not None:
        raise malformed("an export", field, problem)
    return str(value)


def text_of(body: Mapping[str, Any], field: str, what: str, *, default: str = "") -> str:
    """A short printable text field (a status), ``default`` if absent or null."""
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise malformed(what, field, f"{json_type(value)}, expected a string")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise malformed(what, field, f"{len(value)} characters, expected a short printable text")
    return value


def percent_of(body: Mapping[str, Any], field: str, what: str) -> int | None:
    """A progress percentage 0..100 as an integer, None if absent or null."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise malformed(what, field, f"{json_type(value)}, expected a number from 0 to 100")
    if isinstance(value, float) and not math.isfinite(value):
        raise malformed(what, field, "not a finite number, expected a number from 0 to 100")
    return int(min(100, max(0, value)))  # progress is informational: clamp, don't fail


def url_list_of(
    body: Mapping[str, Any], field: str, what: str, *, inner: str = "elements"
) -> tuple[str, ...]:
    """URLs from ``{field: {inner: [{"url": ...}, ...]}}``; absent or null -> none."""
    container = body.get(field)
    if container is None:
        return ()
    if not isinstance(container, dict):
        raise malformed(what, field, f"{json_type(container)}, expected an object")
    elements = container.get(inner)
    if elements is None:
        return ()
    if not isinstance(elements, list):
        raise malformed(what, f"{field}.{inner}", f"{json_type(elements)}, expected a list")
    urls: list[str] = []
    for index, element in enumerate(elements):
        if not isinstance(element, dict):
            raise malformed(what, f"{field}.{inner}[{index}]", f"{json_type(element)}, expected an object")
        url = element.get("url")
        if url is None or url == "":
            continue
        if not isinstance(url, str):
            raise malformed(what, f"{field}.{inner}[{index}].url", f"{json_type(url)}, expected a string")
        urls.append(url)
    return tuple(urls)


def url_of(body: object, field: str, what: str) -> str | None:
    """A URL string field of an object answer, None if absent, null or empty."""
    if not isinstance(body, dict):
        raise malformed(what, field, f"the answer is {json_type(body)}, expected an object")
    value = body.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise malformed(what, field, f"{json_type(value)}, expected a string")
    return value
