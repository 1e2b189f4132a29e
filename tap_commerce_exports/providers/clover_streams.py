"""Clover's two export types and the Singer stream each becomes.

Records keep Clover's own field names; ``createdTime`` (epoch milliseconds) decides the
window a record belongs to.
"""

from __future__ import annotations

from tap_commerce_exports.providers.streams import ExportStreamDefinition as _D

CLOVER_STREAMS: tuple[_D, ...] = (
    _D("orders", "ORDERS", ("id",), "createdTime", "clover/orders.json"),
    _D("payments", "PAYMENTS", ("id",), "createdTime", "clover/payments.json"),
)
