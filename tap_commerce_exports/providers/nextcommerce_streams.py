"""Next Commerce's 13 export types and the Singer stream each becomes.

Column names of the CSV files are not published; the keys and window fields below are
the properties the tap expects after header normalization (``Order Number`` ->
``order_number``). ``window_field`` is the timestamp the export's date range is
assumed to filter on: the object's own creation time (for line items, the parent's).
"""

from __future__ import annotations

from tap_commerce_exports.providers.streams import ExportStreamDefinition as _D

NEXTCOMMERCE_STREAMS: tuple[_D, ...] = (
    _D("orders", "order_list", ("number",), "created_at", "nextcommerce/orders.json"),
    _D("order_line_items", "order_line_items", ("id",), "created_at", "nextcommerce/order_line_items.json"),
    _D("customers", "customer_list", ("id",), "date_joined", "nextcommerce/customers.json"),
    _D("transactions", "transaction_list", ("id",), "date_created", "nextcommerce/transactions.json"),
    _D("disputes", "dispute_list", ("id",), "date_created", "nextcommerce/disputes.json"),
    _D("subscriptions", "subscription_list", ("id",), "date_created", "nextcommerce/subscriptions.json"),
    _D(
        "subscription_line_items",
        "subscription_line_items",
        ("id",),
        "date_created",
        "nextcommerce/subscription_line_items.json",
    ),
    _D("open_carts", "open_cart_list", ("id",), "date_created", "nextcommerce/open_carts.json"),
    _D(
        "open_cart_line_items",
        "open_cart_line_items",
        ("id",),
        "date_created",
        "nextcommerce/open_cart_line_items.json",
    ),
    _D("returns", "return_list", ("id",), "created_at", "nextcommerce/returns.json"),
    _D(
        "return_line_items", "return_line_items", ("id",), "created_at", "nextcommerce/return_line_items.json"
    ),
    _D("fulfillments", "fulfillment_list", ("id",), "created_at", "nextcommerce/fulfillments.json"),
    _D(
        "fulfillment_line_items",
        "fulfillment_line_items",
        ("id",),
        "created_at",
        "nextcommerce/fulfillment_line_items.json",
    ),
)
