"""Clover Order and Payment objects, generated on demand.

Field names and types follow Clover's REST v3 objects: ``id`` is a 13-character
uppercase alphanumeric string, amounts are integer cents, times are epoch
milliseconds, related objects are nested (``employee``, ``device``, ``tender``,
``lineItems.elements``, ``payments.elements``, ``cardTransaction``), and absent values
are *omitted* rather than null, as Clover does. ``createdTime`` is the window field
(``providers/clover_streams.py``).

Like the Next Commerce generator, each object is a pure function of
``(seed, type, day, index)``; about half the days have an object exactly at midnight
UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from commerce_sandbox.accounts import Account
from commerce_sandbox.config import SandboxConfig, parse_instant
from commerce_sandbox.data_nextcommerce import exclusive_end
from commerce_sandbox.datagen import (
    US_PER_S,
    day_count,
    day_instants,
    day_of,
    mix64,
    name_code,
    slot_id,
)

#: Crockford base-32: uppercase letters and digits, as Clover ids look.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ITEM_NAMES = (
    "Cappuccino",
    "Croissant, butter",
    'Bagel "Everything"',
    "Crème brûlée",
    "抹茶ラテ",
    "Pizza 🍕 slice",
    "Soup of the day\nwith bread",
    "Iced tea",
)
EMPLOYEES = (("Ana López", 0), ("Bob O'Hara", 1), ("Chen Wei 陈伟", 2), ("Dana", 3))
NOTES = ("", "No onions, please", 'Table 4 "VIP"', "Allergy: nuts\nCall on arrival", "🎂 birthday")
TENDERS = (
    ("Credit Card", "com.clover.tender.credit_card", True),
    ("Debit Card", "com.clover.tender.debit_card", True),
    ("Cash", "com.clover.tender.cash", False),
)
CARD_TYPES = (("VISA", "411111", "1111"), ("MC", "555555", "4444"), ("AMEX", "378282", "0005"))


def clover_id(seed: int, kind: str, number: int) -> str:
    """13-char id, unique per (seed, kind): a bijective scramble of ``number``.

    ``mix64`` is a bijection of its last argument, so distinct numbers never collide.
    """
    x = mix64(seed, name_code(kind), number)
    out = []
    for _ in range(13):
        x, r = divmod(x, 32)
        out.append(_ALPHABET[r])
    return "".join(out)


class CloverData:
    """Orders and Payments for one config (immutable snapshot)."""

    def __init__(self, cfg: SandboxConfig, account: Account | None = None) -> None:
        #: Rows (counts, instants, values) come from the merchant's seed; ids are the
        #: config's seed scrambling ``id_base + number``, unique across merchants
        #: because ``clover_id`` is a bijection of the number.
        self.seed = account.data_seed if account else cfg.seed
        self.id_seed = cfg.seed
        self.id_base = account.id_base if account else 0
        self.merchant_id = account.name if account else cfg.merchant_id
        self.data_start = int(parse_instant(cfg.data_start).timestamp() * US_PER_S)
        self.data_end = int(parse_instant(cfg.data_end).timestamp() * US_PER_S)
        self._base = {t: cfg.rows_for(t) for t in ("ORDERS", "PAYMENTS")}
        self._large = {t: n for t, n in (cfg.large_file_rows or {}).items() if t in self._base}
        self._first_day = day_of(self.data_start)
        self._n_days = day_of(self.data_end - 1) - self._first_day + 1

    def count(self, export_type: str, day: int) -> int:
        """Objects of ``export_type`` on UTC ``day`` (before range clipping)."""
        if export_type in self._large:
            n, k = self._large[export_type], day - self._first_day
            if k < 0 or k >= self._n_days:
                return 0
            return n // self._n_days + (1 if k < n % self._n_days else 0)
        return day_count(self.seed, name_code(export_type), day, self._base[export_type])

    def iter_objects(
        self, export_type: str, start_ms: int, end_ms: int, end_inclusive: bool
    ) -> Iterator[dict[str, Any]]:
        """Objects with ``createdTime`` in [start, end] / [start, end) and in the data range."""
        lo = max(start_ms, -(-self.data_start // 1000))
        hi_excl = min(exclusive_end(end_ms, end_inclusive, 1), -(-self.data_end // 1000))
        if hi_excl <= lo:
            return
        make = self._order if export_type == "ORDERS" else self._payment
        tcode = name_code(export_type)
        for day in range(day_of(lo * 1000), day_of((hi_excl - 1) * 1000) + 1):
            inst = day_instants(self.seed, tcode, day, self.count(export_type, day))
            for i, us in enumerate(inst):
                ms = us // 1000
                if lo <= ms < hi_excl and self.data_start <= us < self.data_end:
                    yield make(day, i, ms)

    # --- objects -------------------------------------------------------------

    def _id(self, kind: str, number: int) -> str:
        """This merchant's id ``number`` of ``kind`` (offset by its ``id_base``)."""
        return clover_id(self.id_seed, kind, self.id_base + number)

    def _common(self, h: int, ms: int) -> dict[str, Any]:
        emp_name, emp_n = EMPLOYEES[h % len(EMPLOYEES)]
        return {
            "employee": {"id": self._id("EMP", emp_n), "name": emp_name},
            "device": {"id": f"{(h >> 8) & 0xFFFFFFFF:08x}-0d1c-4e6b-9a5f-{(h >> 16) & 0xFFFFFFFFFFFF:012x}"},
            "createdTime": ms,
            "clientCreatedTime": ms - (h >> 20) % 5000,
            "modifiedTime": ms + (h >> 24) % 3_600_000,
        }

    def _order(self, day: int, i: int, ms: int) -> dict[str, Any]:
        h = mix64(self.seed, 11, day, i)
        number = slot_id(day, i)
        oid = self._id("ORDERS", number)
        items = []
        subtotal = 0
        for k in range(1 + h % 4):
            hk = mix64(h, k)
            price = 100 + hk % 2500
            qty = 1000 * (1 + (hk >> 12) % 3)
            subtotal += price * qty // 1000
            item: dict[str, Any] = {
                "id": self._id("LINEITEM", number * 10 + k),
                "orderRef": {"id": oid},
                "name": ITEM_NAMES[(hk >> 5) % len(ITEM_NAMES)],
                "price": price,
                "unitQty": qty,
                "printed": bool((hk >> 20) & 1),
                "createdTime": ms,
                "orderClientCreatedTime": ms,
                "exchanged": False,
                "refunded": bool((hk >> 21) % 17 == 0),
                "isRevenue": True,
            }
            if (hk >> 22) & 3 == 0:
                item["itemCode"] = f"ITM-{hk % 1000:03d}"
            items.append(item)
        tax = subtotal * 8 // 100
        total = subtotal + tax
        paid = (h >> 30) % 5 != 0
        order: dict[str, Any] = {
            "id": oid,
            "currency": "USD",
            **self._common(h, ms),
            "total": total,
            "paymentState": "PAID" if paid else "OPEN",
            "state": "locked" if paid else "open",
            "orderType": {
                "id": self._id("OTYPE", (h >> 33) % 3),
                "label": ("Dine In", "To Go", "Delivery")[(h >> 33) % 3],
            },
            "testMode": False,
            "manualTransaction": bool((h >> 35) % 11 == 0),
            "groupLineItems": bool((h >> 36) & 1),
            "taxRemoved": False,
            "isVat": False,
            "lineItems": {"elements": items},
        }
        title = (h >> 38) % 4
        if title:
            order["title"] = f"#{number % 1000} {('', 'Table 7', 'Pick-up, Jane')[title - 1]}".strip()
        note = NOTES[(h >> 41) % len(NOTES)]
        if note:
            order["note"] = note
        if paid:
            order["payments"] = {
                "elements": [
                    {
                        "id": self._id("ORDERPAY", number),
                        "amount": total,
                        "tipAmount": (h >> 44) % 300,
                        "taxAmount": tax,
                        "result": "SUCCESS",
                        "createdTime": ms + 1000,
                    }
                ]
            }
        return order

    def _payment(self, day: int, i: int, ms: int) -> dict[str, Any]:
        h = mix64(self.seed, 12, day, i)
        number = slot_id(day, i)
        label, key, is_card = TENDERS[h % len(TENDERS)]
        amount = 100 + (h >> 4) % 50000
        n_orders = self.count("ORDERS", day)
        payment: dict[str, Any] = {
            "id": self._id("PAYMENTS", number),
        }
        if n_orders:
            payment["order"] = {"id": self._id("ORDERS", slot_id(day, (h >> 8) % n_orders))}
        common = self._common(h, ms)
        payment.update(
            {
                "device": common["device"],
                "tender": {
                    "id": self._id("TENDER", h % len(TENDERS)),
                    "label": label,
                    "labelKey": key,
                },
                "amount": amount,
                "tipAmount": (h >> 24) % 500,
                "taxAmount": amount * 8 // 108,
                "cashbackAmount": 0 if is_card else ((h >> 28) % 3) * 500,
                "employee": {"id": common["employee"]["id"]},
                "createdTime": ms,
                "clientCreatedTime": common["clientCreatedTime"],
                "modifiedTime": common["modifiedTime"],
                "offline": bool((h >> 31) % 13 == 0),
                "result": "SUCCESS" if (h >> 35) % 20 else "FAIL",
            }
        )
        if is_card:
            card, first6, last4 = CARD_TYPES[(h >> 38) % len(CARD_TYPES)]
            payment["cardTransaction"] = {
                "cardType": card,
                "entryType": ("EMV_CONTACT", "SWIPED", "EMV_CONTACTLESS", "KEYED")[(h >> 40) % 4],
                "first6": first6,
                "last4": last4,
                "type": "AUTH" if (h >> 42) % 4 else "PREAUTH",
                "authCode": f"{(h >> 44) % 1_000_000:06d}",
                "referenceId": f"{(h >> 20) % 10**12:012d}",
                "transactionNo": f"{(h >> 10) % 10**6:06d}",
                "state": "CLOSED",
                "cardholderName": ("JANE DOE", "JOSÉ ÑÚÑEZ", "")[(h >> 46) % 3] or None,
            }
            if payment["cardTransaction"]["cardholderName"] is None:
                del payment["cardTransaction"]["cardholderName"]
        return payment


def clover_key(obj: dict[str, Any]) -> str:
    """Primary key of an Order or Payment (``id``)."""
    return str(obj["id"])
