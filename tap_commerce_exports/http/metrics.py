"""singer-sdk's METRIC lines, written by the tap's own sync path.

Why: the tap's sync bypasses the SDK's (its streams are exports run side by side, not
paged requests one stream after another), so the SDK's own meters never run; Meltano
users and log pipelines read those lines all the same. Each point here goes through the
SDK's metrics logger (``singer_sdk.metrics``), in its format and under its logging
settings:

    METRIC: {"type":"counter","metric":"record_count","value":1464,"tags":{...}}

What is measured is counted where the tap already counts it (records per window, one
request's duration): a point per window or per request, never a cost per record.
"""

from __future__ import annotations

import os
import re
from typing import Any

from singer_sdk import metrics

_ID_SEGMENT = re.compile(r"\d")
_VERSION_SEGMENT = re.compile(r"v\d+")


def log_point(kind: str, metric: metrics.Metric, value: float, tags: dict[str, Any]) -> None:
    """One METRIC line, as the SDK's meters write it (with the process id tag)."""
    tags = {**tags, metrics.Tag.PID.value: os.getpid()}
    metrics.log(metrics.get_metrics_logger(), metrics.Point(kind, metric, value, tags))


def endpoint(base_path: str, path: str) -> str:
    """An API path as a metric tag: relative to the API's base, each segment holding a
    digit (an export id, a merchant id; not a version such as ``v3``) written ``{id}``,
    so one endpoint is one tag."""
    relative = path[len(base_path) :] if path.startswith(base_path) else path
    segments = [
        "{id}" if _ID_SEGMENT.search(s) and not _VERSION_SEGMENT.fullmatch(s) else s
        for s in relative.strip("/").split("/")
        if s
    ]
    return "/".join(segments) or "/"


def request_duration(name: str, seconds: float, status_code: int | None, **tags: Any) -> None:
    """``http_request_duration`` of one request (``status_code`` None: no answer)."""
    ok = status_code is not None and status_code < 400
    point_tags: dict[str, Any] = {
        metrics.Tag.ENDPOINT.value: name,
        metrics.Tag.HTTP_STATUS_CODE.value: status_code,
        metrics.Tag.STATUS.value: (metrics.Status.SUCCEEDED if ok else metrics.Status.FAILED).value,
        **tags,
    }
    log_point("timer", metrics.Metric.HTTP_REQUEST_DURATION, seconds, point_tags)


def record_count(stream: str, account: str, count: int) -> None:
    """``record_count``: the records of one (stream, account) emitted since its last point."""
    tags = {metrics.Tag.STREAM.value: stream, metrics.Tag.CONTEXT.value: {"account": account}}
    log_point("counter", metrics.Metric.RECORD_COUNT, count, tags)


def sync_duration(stream: str, account: str, seconds: float, *, failed: bool) -> None:
    """``sync_duration`` of one (stream, account): from the start of the sync to its end."""
    status = metrics.Status.FAILED if failed else metrics.Status.SUCCEEDED
    tags = {
        metrics.Tag.STREAM.value: stream,
        metrics.Tag.CONTEXT.value: {"account": account},
        metrics.Tag.STATUS.value: status.value,
    }
    log_point("timer", metrics.Metric.SYNC_DURATION, seconds, tags)
