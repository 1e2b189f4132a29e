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
it something else sets ``window_columns``. A line-item file may carry no creation time at
all (the spec's ``SubscriptionLine``, ``CartLine``, ``RefundLine`` and
``FulfillmentOrderLine`` have none): it is read whole, its rows trusted to the export's
range (``files/window.py``).

The key columns are not published either: ``Order Number`` (the contract's own example)
normalizes to ``order_number``, which the orders stream reads as its ``number``; each
stream lists the names its key may have (``key_aliases``), and ``key_columns`` names
another.
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
    name: str,
    export_type: str,
    keys: tuple[str, ...],
    window_field: str,
    schema_path: str,
    key_aliases: tuple[str, ...] = (),
) -> ExportStreamDefinition:
    aliases = tuple(n for n in CREATION_TIME_NAMES if n != window_field)
    return ExportStreamDefinition(
        name, export_type, keys, window_field, schema_path, aliases, key_aliases=key_aliases
    )


#: Other names a line's own id may have in a line-item file. Never a parent's key
#: (``order_number``, ``subscription_id``, ``cart_id``...) nor ``line_item_id`` (a return
#: line's ORDER line): those columns are in the same files and mean other rows.
_LINE_ID = ("line_id",)

NEXTCOMMERCE_STREAMS: tuple[ExportStreamDefinition, ...] = (
    _D("orders", "order_list", ("number",), "created_at", "nextcommerce/orders.json", ("order_number",)),
    _D(
        "order_line_items",
        "order_line_items",
        ("id",),
        "created_at",
        "nextcommerce/order_line_items.json",
        (*_LINE_ID, "order_line_id"),
    ),
    _D("customers", "customer_list", ("id",), "date_joined", "nextcommerce/customers.json", ("customer_id",)),
    _D(
        "transactions",
        "transaction_list",
        ("id",),
        "date_created",
        "nextcommerce/transactions.json",
        ("transaction_id",),
    ),
    _D("disputes", "dispute_list", ("id",), "date_created", "nextcommerce/disputes.json", ("dispute_id",)),
    _D(
        "subscriptions",
        "subscription_list",
        ("id",),
        "date_created",
        "nextcommerce/subscriptions.json",
        ("subscription_id",),
    ),
    _D(
        "subscription_line_items",
        "subscription_line_items",
        ("id",),
        "date_created",
        "nextcommerce/subscription_line_items.json",
        (*_LINE_ID, "subscription_line_id"),
    ),
    _D("open_carts", "open_cart_list", ("id",), "date_created", "nextcommerce/open_carts.json", ("cart_id",)),
    _D(
        "open_cart_line_items",
        "open_cart_line_items",
        ("id",),
        "date_created",
        "nextcommerce/open_cart_line_items.json",
        (*_LINE_ID, "cart_line_id"),
    ),
    _D(
        "returns",
        "return_list",
        ("id",),
        "created_at",
        "nextcommerce/returns.json",
        ("return_id", "refund_id"),
    ),
    _D(
        "return_line_items",
        "return_line_items",
        ("id",),
        "created_at",
        "nextcommerce/return_line_items.json",
        (*_LINE_ID, "return_line_id", "refund_line_id"),
    ),
    _D(
        "fulfillments",
        "fulfillment_list",
        ("id",),
        "created_at",
        "nextcommerce/fulfillments.json",
        ("fulfillment_id",),
    ),
    _D(
        "fulfillment_line_items",
        "fulfillment_line_items",
        ("id",),
        "created_at",
        "nextcommerce/fulfillment_line_items.json",
        (*_LINE_ID, "fulfillment_line_id", "fulfillment_order_line_id"),
    ),
)
