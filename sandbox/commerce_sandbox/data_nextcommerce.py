"""Next Commerce export rows, generated on demand.

Columns per export type are the *scalar* fields of the matching object in the
provider's OpenAPI spec (``components.schemas``: Order, OrderLine, User, ...), plus:

* for line-item types, the parent key (``order_number``, ``subscription_id``,
  ``cart_id``, ``return_id``, ``fulfillment_id``) and the parent's timestamp under the
  window-field name the tap expects (``providers/nextcommerce_streams.py``);
* one or two store "metadata" columns no schema knows (``Gift Message``,
  ``utm_campaign``...), because stores can enable those on exports and the tap must
  keep them.

Cells are strings as they appear in the CSV; ``""`` is an empty cell (null). Values
are deliberately nasty: quoted commas, quotes, embedded newlines, accents, CJK,
emoji, negative money, timestamps in varying UTC offsets with and without
microseconds, and rows exactly on midnight UTC.

Every value is a pure function of ``(seed, type, day, index)`` (see ``datagen``):
pools of candidate values are built once per generator, and each row picks from them
by its own hash, which keeps a million rows within a few seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from commerce_sandbox.accounts import Account
from commerce_sandbox.config import NC_TYPES, SandboxConfig, parse_instant
from commerce_sandbox.datagen import (
    US_PER_S,
    day_count,
    day_hashes,
    day_instants,
    day_of,
    iso_formatter,
    line_hash,
    mix64,
    name_code,
    slot_id,
)

# --- value pools -------------------------------------------------------------

NASTY_TEXT: tuple[str, ...] = (
    "Classic Tee, Black / XL",
    'The "Premium" Bundle',
    "Line one\nLine two",
    "Café crème brûlée",
    "日本語の商品セット",
    "Gift 🎁 box",
    "O'Brien's \"special\", deluxe",
    "Müller-Lüdenscheid Grösse",
    "Ταυτότητα προϊόντος",
    "Family 👩‍👩‍👧 pack",
    "Windows\r\nline break",
    "Plain product",
    "Serum 30ml",
    "Vitamin C, 60 caps",
    "Ñandú piñata",
    "中文，逗号",
)
FIRST_NAMES = ("Anna", "José", "Zoë", "Łukasz", "美咲", "Olu", "François", "Siobhán", "Ahmed", "O'Neil")
LAST_NAMES = (
    "Smith",
    "García",
    "Müller",
    "Nguyễn",
    "田中",
    "O'Connor",
    "Dupont, Jr.",
    'Doe "JD"',
    "Østergaard",
)
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15",
    "",
)


@dataclass(frozen=True)
class Col:
    """One CSV column: its snake_case name and how to make its values.

    ``kind`` is one of: ``key`` (the row's primary key), ``window`` (the row's own or
    its parent's instant), ``parent`` (parent key), ``ts`` (instant + a delta within
    ``args``), ``money`` (lo, hi cents), ``int`` (lo, hi), ``bool``, ``enum`` (choices;
    ``""`` = null), ``text``, ``email``, ``url`` (template), ``order_ref`` (an order
    number of the same day). ``null`` is the share of empty cells.
    """

    name: str
    kind: str
    args: tuple[Any, ...] = ()
    null: float = 0.0


def _m(name: str, lo: int = 0, hi: int = 20000, null: float = 0.0) -> Col:
    return Col(name, "money", (lo, hi), null)


def _i(name: str, lo: int = 0, hi: int = 10, null: float = 0.0) -> Col:
    return Col(name, "int", (lo, hi), null)


def _b(name: str, null: float = 0.0) -> Col:
    return Col(name, "bool", (), null)


def _e(name: str, *choices: str) -> Col:
    return Col(name, "enum", tuple(choices))


def _t(name: str, null: float = 0.0) -> Col:
    return Col(name, "text", (), null)


def _ts(name: str, lo_s: int, hi_s: int, null: float = 0.0) -> Col:
    return Col(name, "ts", (lo_s, hi_s), null)


KEY_ID = Col("id", "key")
PRODUCT_COLS = (
    _i("product_id", 1000, 9999),
    Col("product_image", "url", ("https://cdn.example.com/products/{n}.jpg?w=200&h=200",)),
    _t("product_title"),
    Col("product_url", "url", ("https://demo-store.example.com/products/{n}/",)),
    Col("sku", "enum", ("SKU-001", "SKU-002", "TEE-BLK-XL", "SER-30ML", "VIT,C-60", "")),
    _i("variant_id", 10000, 99999),
    Col("variant_title", "enum", ("Black / XL", "Default", "30 ml", "Größe M", "赤 / S", "")),
)

#: export type -> (columns, parent type or None, metadata column names in the file).
SPECS: dict[str, tuple[tuple[Col, ...], str | None]] = {
    "order_list": (
        (
            Col("number", "key"),
            Col("created_at", "window"),
            _e("currency", *CURRENCIES),
            _ts("date_placed", 0, 90),
            _e("display_taxes", "inclusive", "exclusive"),
            _e("fulfillment_status", "unfulfilled", "fulfilled", "processing", "not_required", "on_hold"),
            _b("is_test"),
            Col("order_status_url", "url", ("https://demo-store.example.com/checkout/order/{n}/?key=a,b",)),
            _m("original_shipping_excl_tax", 0, 1500),
            _m("original_shipping_incl_tax", 0, 1800),
            _m("original_total_discount", 0, 2000),
            _m("original_total_excl_tax"),
            _m("original_total_incl_tax"),
            _e("payment_status", "paid", "pending", "authorized", "refunded", "partially_paid", "voided"),
            _e("shipping_code", "standard", "express", "free", ""),
            _m("shipping_excl_tax", 0, 1500),
            _m("shipping_incl_tax", 0, 1800),
            _e("shipping_method", "Standard Shipping", "Express, 2-day", "Free 🚚", ""),
            _m("shipping_tax", 0, 300),
            _e("source", "web", "api", "admin", "subscription"),
            _e("status", "open", "complete", "canceled", "partially_refunded"),
            _e("subscription_lifecycle", "initial", "renewal", ""),
            _b("supports_post_purchase_upsells"),
            _m("total_cost", 0, 9000),
            _m("total_discount", 0, 2000),
            _m("total_excl_tax"),
            _m("total_incl_tax"),
            _m("total_outstanding", -500, 500),
            _m("total_tax", 0, 3000),
            _ts("updated_at", 60, 5 * 86400),
            Col("Gift Message", "text", (), 0.7),
            _e("utm_campaign", "spring_sale", "black-friday", "newsletter,jan", ""),
        ),
        None,
    ),
    "order_line_items": (
        (
            KEY_ID,
            Col("order_number", "parent"),
            Col("created_at", "window"),
            _e("currency", *CURRENCIES),
            _i("current_quantity", 0, 5),
            _i("editable_quantity", 0, 5),
            _i("fulfillable_quantity", 0, 5),
            _b("is_gift_card"),
            _b("is_upsell"),
            _m("original_price_excl_tax", 100, 9000),
            _m("original_price_incl_tax", 100, 9900),
            _m("original_total_discount", 0, 900),
            _m("price_excl_tax", 100, 9000),
            _m("price_incl_tax", 100, 9900),
            *PRODUCT_COLS,
            _i("quantity", 1, 5),
            _b("requires_shipping"),
            _m("total_cost", 0, 5000),
            _m("total_discount", 0, 900),
            _m("unit_cost", 0, 5000),
            _ts("updated_at", 0, 86400, null=0.2),
            Col("Engraving Text", "text", (), 0.8),
        ),
        "order_list",
    ),
    "customer_list": (
        (
            KEY_ID,
            Col("date_joined", "window"),
            _b("accepts_marketing"),
            Col("email", "email"),
            _e("first_name", *FIRST_NAMES),
            Col("ip", "enum", ("203.0.113.7", "2001:db8::1", "198.51.100.23", "")),
            _b("is_blocked"),
            _e("language", "en", "fr", "de", "es", "th", ""),
            _e("last_name", *LAST_NAMES),
            _i("orders_count", 0, 40),
            _e("phone_number", "+15555550123", "+44 20 7946 0958", "+81-3-1234-5678", ""),
            _i("subscriptions_count", 0, 4),
            _m("total_spent", 0, 500000),
            _e("user_agent", *USER_AGENTS),
            _e("user_type", "customer", "lead", "dashboard"),
            _e("utm_campaign", "spring_sale", "black-friday", "newsletter,jan", ""),
            _e("Loyalty Tier", "Gold ⭐", "Silver", "Bronze", ""),
        ),
        None,
    ),
    "transaction_list": (
        (
            KEY_ID,
            Col("date_created", "window"),
            _m("amount", -20000, 40000),
            _m("amount_available_for_refund", 0, 20000),
            _e("auth_code", "A1B2C3", "000000", ""),
            _e("currency", *CURRENCIES),
            _e("external_id", "ch_3Nabc", "pi_999,x", ""),
            _b("is_disputed"),
            _b("is_external"),
            _b("is_test", null=0.3),
            _e("network_transaction_id", "MCC123456789", ""),
            Col("order", "order_ref", (), 0.1),
            _i("parent_id", 1, 999999, null=0.7),
            _e("payment_method", "card", "paypal", "apple_pay", "google_pay", "bank_transfer"),
            _i("response_code", 0, 999),
            _e("statement_descriptor", "DEMO*STORE", 'DEMO "STORE"', ""),
            _e("status", "succeeded", "failed", ""),
            _e("type", "sale", "refund", "authorization", "capture", "void"),
            Col("Processor Note", "text", (), 0.6),
        ),
        None,
    ),
    "dispute_list": (
        (
            KEY_ID,
            Col("date_created", "window"),
            _m("amount", -20000, 20000, null=0.1),
            _e("arn", "74537604221431003881865", ""),
            _e("case_number", "CB-1001", "CB-2002, reopened", ""),
            _e("currency", *CURRENCIES),
            _ts("happened_at", -30 * 86400, 0),
            _i("order", 1, 999999, null=0.2),
            _m("report_amount", 0, 20000, null=0.2),
            _e("report_currency", "USD", "EUR", ""),
            _e("resolution", "won", "issued_full_refund", "could_not_find_order", ""),
            _t("resolution_other_message", null=0.6),
            _e("status", "new", "open", "resolved"),
            _i("transaction", 1, 999999, null=0.2),
            _e("type", "alert", "chargeback"),
            Col("Internal Notes", "text", (), 0.5),
        ),
        None,
    ),
    "subscription_list": (
        (
            KEY_ID,
            Col("date_created", "window"),
            _e("cancel_reason", "", "too_expensive", "other"),
            _t("cancel_reason_other_message", null=0.7),
            _e("currency", *CURRENCIES),
            _e("frequency", "Every 1 month", "Every 2 weeks", "Every 3 months"),
            _e("interval", "day", "week", "month", "year"),
            _i("interval_count", 1, 6),
            _b("is_tax_known"),
            _b("is_test"),
            _ts("next_renewal_date", 86400, 90 * 86400, null=0.2),
            _i("num_lines", 1, 3),
            _i("num_orders", 0, 24),
            _e("payment_method", "card", "paypal", "apple_pay"),
            _e("shipping_code", "standard", "express", ""),
            _m("shipping_price", 0, 1500),
            _e("status", "active", "past_due", "canceled", "retrying", "paused"),
            _m("total", 500, 30000),
            _e("utm_campaign", "spring_sale", "black-friday", "newsletter,jan", ""),
        ),
        None,
    ),
    "subscription_line_items": (
        (
            KEY_ID,
            Col("subscription_id", "parent"),
            Col("date_created", "window"),
            _m("price", 100, 9900),
            *PRODUCT_COLS,
            _i("quantity", 1, 4),
            _e("Gift Wrap", "yes", "no", ""),
        ),
        "subscription_list",
    ),
    "open_cart_list": (
        (
            KEY_ID,
            Col("date_created", "window"),
            _b("abandoned"),
            Col("checkout_url", "url", ("https://demo-store.example.com/checkout/{n}/?utm=a,b",)),
            _e("currency", *CURRENCIES),
            _e("status", "open", "abandoned", "recovered"),
            _e("utm_source", "google", "facebook", "e-mail, weekly", ""),
        ),
        None,
    ),
    "open_cart_line_items": (
        (
            KEY_ID,
            Col("cart_id", "parent"),
            Col("date_created", "window"),
            _e("currency", *CURRENCIES),
            _e("interval", "day", "week", "month", ""),
            _i("interval_count", 1, 6, null=0.5),
            _b("is_upsell"),
            _m("price_excl_tax", 100, 9000),
            _m("price_incl_tax", 100, 9900),
            *PRODUCT_COLS,
            _i("quantity", 1, 5),
            _m("total_cost", 0, 5000),
            _m("total_discount", 0, 900),
            _m("unit_cost", 0, 5000),
            Col("Engraving Text", "text", (), 0.8),
        ),
        "open_cart_list",
    ),
    "return_list": (
        (
            KEY_ID,
            Col("created_at", "window"),
            _t("note", null=0.5),
            Col("order_number", "order_ref"),
            _m("total_refund_amount", 0, 20000),
            _m("total_return_excl_tax", 0, 18000),
            _m("total_return_incl_tax", 0, 20000),
            _i("user_id", 1, 99999),
            _e("Return Reason", "Too small", "Damaged, box torn", "Changed mind 🙃", ""),
        ),
        None,
    ),
    "return_line_items": (
        (
            KEY_ID,
            Col("return_id", "parent"),
            Col("created_at", "window"),
            _m("amount_excl_tax", -9000, 9000),
            _m("amount_incl_tax", -9900, 9900),
            _i("line_item_id", 1, 9999999),
            _i("location_id", 1, 20),
            _i("quantity", 1, 3),
            _e("restock_type", "cancel", "no_restock", "return"),
            _e("Condition", "new", "opened", 'damaged "badly"', ""),
        ),
        "return_list",
    ),
    "fulfillment_list": (
        (
            KEY_ID,
            Col("created_at", "window"),
            Col("order_number", "order_ref"),
            _e("request_status", "pending", "requested", "accepted", "rejected", "closed"),
            _e("status", "open", "processing", "on_hold", "closed", "canceled"),
            _ts("updated_at", 0, 3 * 86400),
            _e("Carrier Notes", "Leave at door", "Call first, gate code 1234", "配達希望", ""),
        ),
        None,
    ),
    "fulfillment_line_items": (
        (
            KEY_ID,
            Col("fulfillment_id", "parent"),
            Col("created_at", "window"),
            _i("quantity", 1, 5),
            _e("Bin Location", "A-01", "B-12, shelf 3", ""),
        ),
        "fulfillment_list",
    ),
}

#: Line-item type -> (lines per parent: minimum, maximum).
LINES_PER_PARENT: dict[str, tuple[int, int]] = {
    "order_line_items": (1, 3),
    "subscription_line_items": (1, 2),
    "open_cart_line_items": (1, 3),
    "return_line_items": (1, 2),
    "fulfillment_line_items": (1, 3),
}

assert set(SPECS) == set(NC_TYPES)


def key_column(export_type: str) -> str:
    """Primary-key column (matches ``nextcommerce_streams.py``)."""
    return "number" if export_type == "order_list" else "id"


def window_column(export_type: str) -> str:
    """Window-field column (matches ``nextcommerce_streams.py``)."""
    return next(c.name for c in SPECS[export_type][0] if c.kind == "window")


def column_names(export_type: str, window_names: Mapping[str, str] | None = None) -> list[str]:
    """Column names in file order, before any title-casing; the window column is called
    ``window_names[export_type]`` if given (``SandboxConfig.window_column_names``)."""
    renamed = (window_names or {}).get(export_type)
    return [renamed if renamed and c.kind == "window" else c.name for c in SPECS[export_type][0]]


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


#: Pre-generated combinations of the pooled (non-per-row) cells per type. Each row
#: picks one by its hash; per-row cells (keys, timestamps, references) are unique.
TEMPLATES = 1021
#: Column kinds computed per row rather than taken from a template.
DYNAMIC_KINDS = frozenset({"key", "window", "parent", "ts", "order_ref"})

#: Store-defined metadata columns: spelled as the store named them, never title-cased.
METADATA_COLUMNS = frozenset(
    {
        "Gift Message",
        "utm_campaign",
        "Engraving Text",
        "Loyalty Tier",
        "Processor Note",
        "Internal Notes",
        "Gift Wrap",
        "utm_source",
        "Return Reason",
        "Condition",
        "Carrier Notes",
        "Bin Location",
    }
)


def csv_cell(value: str) -> str:
    """One cell as ``csv.writer(QUOTE_MINIMAL)`` would write it (kept byte-identical)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


@lru_cache(maxsize=64)
def type_plan(seed: int, export_type: str) -> _TypePlan:
    """The (seed, type) plan, built once per process (~0.1 s for the widest type)."""
    return _TypePlan(seed, export_type)


class _TypePlan:
    """Per-type precomputation: which columns are per-row, and the template cells."""

    def __init__(self, seed: int, export_type: str) -> None:
        cols = SPECS[export_type][0]
        self.cols = cols
        self.dynamic = [j for j, c in enumerate(cols) if c.kind in DYNAMIC_KINDS]
        rng = random.Random(mix64(seed, name_code(export_type), 77))
        self.raw: list[list[str]] = []
        #: Per template, the whole CSV line with ``%s`` where per-row cells go.
        self.line_formats: list[str] = []
        for n in range(TEMPLATES):
            cells = [_pooled_value(c, rng, n) for c in cols]
            self.raw.append(cells)
            marked = [("\x00" if j in self.dynamic else csv_cell(v)) for j, v in enumerate(cells)]
            line = ",".join(marked).replace("%", "%%").replace("\x00", "%s") + "\r\n"
            self.line_formats.append(line)


def _pooled_value(col: Col, rng: random.Random, n: int) -> str:
    """A random cell for a pooled column ("" for per-row columns, filled later)."""
    if col.kind in DYNAMIC_KINDS:
        return ""
    if col.null and rng.random() < col.null:
        return ""
    if col.kind == "money":
        return _money(rng.randint(*col.args))
    if col.kind == "int":
        return str(rng.randint(*col.args))
    if col.kind == "bool":
        return "true" if rng.random() < 0.3 else "false"
    if col.kind == "enum":
        return str(rng.choice(col.args))
    if col.kind == "text":
        return rng.choice(NASTY_TEXT)
    if col.kind == "email":
        first = rng.choice(("anna", "jose", "zoe", "o'neil", "li.wei", "user+tag"))
        return f"{first}{n}@example.{rng.choice(('com', 'de', 'co.jp'))}"
    if col.kind == "url":
        return str(col.args[0]).format(n=rng.randint(1, 99999))
    raise ValueError(col.kind)  # pragma: no cover - guarded by SPECS


class NextCommerceData:
    """Rows of every Next Commerce export type for one config (immutable snapshot)."""

    def __init__(self, cfg: SandboxConfig, account: Account | None = None) -> None:
        #: Rows come from the account's seed; the pooled cell templates from the
        #: config's (built once per process, shared by every account).
        self.seed = account.data_seed if account else cfg.seed
        self.plan_seed = cfg.seed
        #: Added to every id and reference, so ids are unique across accounts.
        self.id_base = account.id_base if account else 0
        self.data_start = int(parse_instant(cfg.data_start).timestamp() * US_PER_S)
        self.data_end = int(parse_instant(cfg.data_end).timestamp() * US_PER_S)
        self._base = {t: cfg.rows_for(t) for t in NC_TYPES}
        self._large: dict[str, int] = {}
        for t, n in (cfg.large_file_rows or {}).items():
            if t in LINES_PER_PARENT:
                lo, hi = LINES_PER_PARENT[t]
                self._large[SPECS[t][1] or t] = round(n * 2 / (lo + hi))
            elif t in NC_TYPES:
                self._large[t] = n
        self._fmt_iso = iso_formatter(None if cfg.utc_offsets is None else tuple(cfg.utc_offsets))
        self._first_day = day_of(self.data_start)
        self._n_days = day_of(self.data_end - 1) - self._first_day + 1

    def _plan(self, export_type: str) -> _TypePlan:
        return type_plan(self.plan_seed, export_type)

    # --- counts and instants ---------------------------------------------------

    def count(self, export_type: str, day: int) -> int:
        """Objects of a parent type created on UTC ``day`` (before range clipping)."""
        if export_type in self._large:
            n = self._large[export_type]
            k = day - self._first_day
            if k < 0 or k >= self._n_days:
                return 0
            return n // self._n_days + (1 if k < n % self._n_days else 0)
        return day_count(self.seed, name_code(export_type), day, self._base[export_type])

    def instants(self, export_type: str, day: int) -> tuple[int, ...]:
        """Sorted instants (µs) of a parent type's objects on ``day``."""
        return day_instants(self.seed, name_code(export_type), day, self.count(export_type, day))

    # --- rows ----------------------------------------------------------------

    def _iter_parts(
        self, export_type: str, start_us: int, end_us: int, end_inclusive: bool
    ) -> Iterator[tuple[int, list[str]]]:
        """(template index, per-row cells) of every row in the window, in file order.

        A row is in when its window instant is in [start, end] / [start, end) (see
        :func:`exclusive_end`) and in [data_start, data_end). Days are walked in
        order, rows by instant; line items follow their parent.
        """
        lo = max(start_us, self.data_start)
        hi_excl = min(exclusive_end(end_us, end_inclusive, 1), self.data_end)
        if hi_excl <= lo:
            return
        plan = self._plan(export_type)
        parent = SPECS[export_type][1]
        base_type = parent or export_type
        tcode = name_code(export_type)
        makers = [self._maker(export_type, plan.cols[j], j) for j in plan.dynamic]
        lmin, lmax = LINES_PER_PARENT.get(export_type, (1, 1))
        for day in range(day_of(lo), day_of(hi_excl - 1) + 1):
            inst = self.instants(base_type, day)
            hashes = day_hashes(self.seed, tcode, day, len(inst))
            for i, us in enumerate(inst):
                if us < lo or us >= hi_excl:
                    continue
                h = hashes[i]
                if parent is None:
                    yield h % TEMPLATES, [mk(h, us, day, i, 0) for mk in makers]
                    continue
                for line in range(lmin + (h >> 52) % (lmax - lmin + 1)):
                    hl = line_hash(h, line)
                    yield hl % TEMPLATES, [mk(hl, us, day, i, line) for mk in makers]

    def iter_rows(
        self, export_type: str, start_us: int, end_us: int, end_inclusive: bool
    ) -> Iterator[list[str]]:
        """Rows (lists of raw cells, ``""`` = null) in file order; see ``_iter_parts``."""
        plan = self._plan(export_type)
        dyn = plan.dynamic
        for t, values in self._iter_parts(export_type, start_us, end_us, end_inclusive):
            row = list(plan.raw[t])
            for j, v in zip(dyn, values, strict=False):
                row[j] = v
            yield row

    def iter_csv_lines(
        self, export_type: str, start_us: int, end_us: int, end_inclusive: bool
    ) -> Iterator[str]:
        """The same rows as CSV text lines (``\r\n``-terminated), pre-escaped.

        Byte-identical to ``csv.writer`` output of :meth:`iter_rows`, but several
        times faster, which is what keeps a million-row file within seconds.
        """
        formats = self._plan(export_type).line_formats
        for t, values in self._iter_parts(export_type, start_us, end_us, end_inclusive):
            yield formats[t] % tuple(values)

    def _maker(self, export_type: str, col: Col, j: int) -> Callable[[int, int, int, int, int], str]:
        """A cell function ``(row hash, instant, day, index, line) -> str`` for a column."""
        shift = (j * 5) % 43
        parent = SPECS[export_type][1]
        base = self.id_base
        if col.kind == "key":
            if parent is None:
                return lambda h, us, day, i, line: str(base + slot_id(day, i))
            return lambda h, us, day, i, line: str(base + slot_id(day, i) * 10 + line + 1)
        if col.kind == "parent":
            return lambda h, us, day, i, line: str(base + slot_id(day, i))
        fmt_iso = self._fmt_iso
        if col.kind == "window":
            return lambda h, us, day, i, line: fmt_iso(us, (h >> shift) & 0xFF)
        if col.kind == "ts":
            lo_s, hi_s = col.args
            span = (hi_s - lo_s) * US_PER_S + 1
            null = col.null

            def ts(h: int, us: int, day: int, i: int, line: int) -> str:
                if null and ((h >> shift) & 0xFF) < null * 256:
                    return ""
                delta = lo_s * US_PER_S + (h >> 7) % span
                if (h >> 3) & 1:
                    delta -= delta % US_PER_S
                return fmt_iso(us + delta, (h >> (shift + 8)) & 0xFF)

            return ts
        if col.kind == "order_ref":
            null = col.null

            def ref(h: int, us: int, day: int, i: int, line: int) -> str:
                if null and ((h >> shift) & 0xFF) < null * 256:
                    return ""
                n = self.count("order_list", day)
                if n == 0:
                    return ""
                return str(base + slot_id(day, (h >> 11) % n))

            return ref
        raise ValueError(col.kind)  # pragma: no cover


def exclusive_end(end: int, end_inclusive: bool, unit: int) -> int:
    """THE boundary rule of the sandbox, for both providers, in one place.

    An export asked for [start, end] (``date_to_inclusive``, the default) or
    [start, end) holds the rows with ``start <= instant < exclusive_end(...)``;
    ``unit`` is the resolution of the instants (1 µs for Next Commerce, 1 ms for
    Clover), so an inclusive end admits exactly the instants equal to it.
    """
    return end + unit if end_inclusive else end


__all__: Sequence[str] = (
    "NextCommerceData",
    "SPECS",
    "column_names",
    "key_column",
    "window_column",
    "exclusive_end",
    "METADATA_COLUMNS",
)
