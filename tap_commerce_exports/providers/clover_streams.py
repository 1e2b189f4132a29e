"""Clover's two export types and the Singer stream each becomes.

Records keep Clover's own field names; ``createdTime`` (epoch milliseconds) decides the
window a record belongs to. That name is Clover's own published object field, so no
alias is tried (``clientCreatedTime`` is the device's clock, not the server's, and would
move rows across window boundaries); a file without it stops its stream, and
``window_columns`` can name another field.
"""

from __future__ import annotations

from tap_commerce_exports.providers.streams import ExportStreamDefinition as _D

CLOVER_STREAMS: tuple[_D, ...] = (
    _D("orders", "ORDERS", ("id",), "createdTime", "clover/orders.json"),
    _D("payments", "PAYMENTS", ("id",), "createdTime", "clover/payments.json"),
)
