"""Next Commerce's 13 export types and the Singer stream each becomes.

Column names of the CSV files are not published; the keys and window fields below are
the properties the tap expects after header normalization (``Order Number`` ->
``order_number``). ``window_field`` is the timestamp the export's date range is
assumed to filter on: the object's own creation time (for line items, the parent's).

Which name a file gives that creation time is not published either: the API objects
say ``created_at`` (Order, OrderLine, FulfillmentOrder, Refund), ``date_created``
(Transaction, Subscription, Dispute, Cart, Fulfillment) or ``date_joined`` (User), and a
store's export may use another of them. So every stream looks for its own field first,
then for the other creation-time names below (after header normalization, so
``Date Created`` and ``dateCreated`` count as ``date_created``). A store whose files call
it something else sets ``window_columns``.
"""

from __future__ import annotations

from tap_commerce_exports.providers.streams import ExportStreamDefinition

#: Every name a Next Commerce export file is known (or likely) to give a creation time,
#: most common first. Not ``date_placed`` or ``updated_at``: those are other instants.
CREATION_TIME_NAMES: tuple[str, ...] = (
    "created_at",
    "date_created",
    "created",
    "date_joined",
    "created_date",
    "creation_date",
    "date_added",
)


def _D(  # noqa: N802 - reads as the table's row constructor
    name: str, export_type: str, keys: tuple[str, ...], window_field: str, schema_path: str
) -> ExportStreamDefinition:
    aliases = tuple(n for n in CREATION_TIME_NAMES if n != window_field)
    return ExportStreamDefinition(name, export_type, keys, window_field, schema_path, aliases)


NEXTCOMMERCE_STREAMS: tuple[ExportStreamDefinition, ...] = (
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
