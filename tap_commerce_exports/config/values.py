"""Value parsers of settings: numbers, instants, choices, URLs, a listen address.

Each speaks to the user: a mistake is a :class:`ConfigError` whose one line names the
setting and says what to put there. Bounds and defaults come from the declarations
(``config/declarations.py``); these only apply them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any, Literal, overload
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.http.hosts import is_loopback


def opt_str(config: Mapping[str, Any], key: str) -> str | None:
    """A text setting, stripped; None when unset or blank."""
    value = config.get(key)
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


def window_columns(config: Mapping[str, Any], streams: Sequence[str], title: str) -> dict[str, str]:
    """``window_columns``: an object of stream name -> column name (JSON text accepted,
    as environment variables give it)."""
    return stream_columns(config, "window_columns", streams, title, 'e.g. {"orders": "date_created"}')


def stream_columns(
    config: Mapping[str, Any], name: str, streams: Sequence[str], title: str, example: str
) -> dict[str, str]:
    """A setting of stream name -> column name (``window_columns``, ``key_columns``)."""
    value = config.get(name)
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(
                f"setting '{name}' is not a JSON object: give stream -> column, {example}"
            ) from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"setting '{name}' must be an object of stream -> column, {example}")
    result: dict[str, str] = {}
    for stream, column in value.items():
        if stream not in streams:
            raise ConfigError(
                f"setting '{name}' names stream '{stream}', which {title} "
                f"does not have: use one of {', '.join(streams)}"
            )
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"setting '{name}' gives stream '{stream}' no column name: {example}")
        result[str(stream)] = column.strip()
    return result


def time_zone(config: Mapping[str, Any], name: str) -> str | None:
    """An IANA time zone name (``America/New_York``), checked; None when unset."""
    value = opt_str(config, name)
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(
            f"setting '{name}' is '{value[:60]}': give an IANA time zone name such as "
            "'America/New_York' or 'Europe/Berlin'"
        ) from None
    return value


def check_api_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"setting 'api_url' is '{url}': give a full URL like https://host/path/")
    if parts.username or parts.password:
        raise ConfigError("setting 'api_url' carries credentials: remove them; use 'access_token'")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"setting 'api_url' uses plain http for '{parts.hostname}': use https "
            "(plain http is allowed only for loopback addresses)"
        )


@overload
def parse_instant(value: Any, key: str, *, required: Literal[True]) -> datetime: ...
@overload
def parse_instant(value: Any, key: str, *, required: bool) -> datetime | None: ...
def parse_instant(value: Any, key: str, *, required: bool) -> datetime | None:
    if value is None or value == "":
        if required:
            raise ConfigError(f"setting '{key}' is missing: give an ISO-8601 date like 2025-01-01")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"setting '{key}' is '{text}', which is not a date: use ISO-8601 like 2025-01-01 or 2025-01-01T00:00:00Z"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def number(
    config: Mapping[str, Any], key: str, default: float, *, minimum: float, maximum: float = 1e12
) -> float:
    value = config.get(key)
    if value is None or value == "":
        return float(default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting '{key}' is '{value}', which is not a number") from None
    if not number >= minimum:  # also catches NaN
        raise ConfigError(f"setting '{key}' is {value}: it must be at least {minimum:g}")
    if number > maximum:  # also catches infinity
        raise ConfigError(f"setting '{key}' is {value}: it must be at most {maximum:g}")
    return number


def whole(config: Mapping[str, Any], key: str, default: int, *, minimum: int, maximum: int) -> int:
    value = number(config, key, default, minimum=minimum, maximum=maximum)
    if not value.is_integer():
        raise ConfigError(f"setting '{key}' is {value:g}: give a whole number")
    return int(value)


def choice(config: Mapping[str, Any], key: str, default: str, options: tuple[str, ...]) -> str:
    value = str(config.get(key) or default).strip().lower()
    if value not in options:
        raise ConfigError(f"setting '{key}' is '{value}': use one of {', '.join(options)}")
    return value


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"setting 'webhook_listen' is '{text}': use host:port, e.g. 0.0.0.0:8765")
    return (host or "0.0.0.0").strip("[]"), int(port)
