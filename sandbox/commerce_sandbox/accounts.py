"""Several Next Commerce stores and Clover merchants, each with its own token and data.

Why: a Clover app serves many merchants and an agency runs many stores, so the tap
syncs several accounts at once; the sandbox must let tests check that one account's
token never opens another's data and that a union of accounts is exact.

The model, kept simple on purpose:

* The single ``store`` / ``merchant_id`` / ``token`` settings are always the *default
  account* of each provider: served at ``/api/admin/`` (Next Commerce) and
  ``/v3/merchants/{merchant_id}`` (Clover), with exactly the data they had before
  (``seed`` unchanged, ids unchanged). Every existing test and the demo see no
  difference.
* ``accounts`` adds more: a list of ``{"store": S, "token": T}`` (Next Commerce) and
  ``{"merchant_id": M, "token": T}`` (Clover) objects, each optionally with its own
  ``webhook_url`` / ``webhook_secret`` (else the top-level ones). The count form
  ``{"stores": 3, "merchants": 2}`` (CLI: ``--accounts stores=3,merchants=2``) expands to
  stores ``store-1..3`` with tokens ``token-store-1..3`` and merchants
  ``MERCHANT1..2`` with tokens ``token-MERCHANT1..2``: names a Dagster partition or a
  test can compute without asking the sandbox.
* The real Next Commerce API tells stores apart by host
  (``https://{store}.29next.store/api/admin/``); one loopback server cannot, so store
  ``S`` is served under the path prefix ``/stores/S/api/admin/`` (its ``api_url``). Clover
  already names the merchant in the path.
* A token opens only its own account: another account's token gets the same 401 as an
  invalid one. An unknown store is a 404 (no such host); an unknown merchant a 404 as
  before.
* Data: an account's rows come from its own seed, derived from ``seed`` and its name,
  and its ids carry an offset derived from its name (``id_base``), so ids never collide
  across accounts and a union can be checked exactly. Ids stay below 2**53 (exact in
  any JSON reader); so offsets are few (89,999), and when two names' offsets collide
  the later-listed account takes the next free one. Rows stay a pure function of
  (seed, name, type, day, index).
* Limits: rate limits are per token, as both providers publish, hence per account.
  Clover's running-export cap is per merchant (the guide's "wait for each export to
  finish" concerns one merchant's export queue; a cap shared by every merchant of an
  app would let one merchant starve the others, which Clover does not describe). The
  app-wide Clover limits (50 requests/s, 10 in flight across all of an app's tokens)
  are ``clover_app_rate_limit`` / ``clover_app_max_concurrent_requests``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from commerce_sandbox.datagen import mix64, name_code

NEXTCOMMERCE = "nextcommerce"
CLOVER = "clover"
#: Ids of one account occupy ``id_base + [1, ID_SPAN)``; every id generator stays below
#: it (line-item ids are the largest: day slot * 10 + line, < 1e11 until year 2270).
ID_SPAN = 10**11
#: Name-derived id prefixes are 1..ID_PREFIXES, so every id stays below 2**53.
ID_PREFIXES = 89_999
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_COUNT_KEYS = {"stores": NEXTCOMMERCE, "merchants": CLOVER}


@dataclass(frozen=True)
class Account:
    """One store or merchant as the sandbox serves it."""

    provider: str
    #: Store subdomain (Next Commerce) or merchant id (Clover).
    name: str
    token: str
    #: Seed of this account's rows (the config's ``seed`` for the default account).
    data_seed: int
    #: Added to every generated id (0 for the default account).
    id_base: int
    default: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None


def account_seed(seed: int, name: str) -> int:
    """The seed of a non-default account's rows: a stable function of seed and name."""
    return mix64(seed, name_code(name), 0xACC) & 0x7FFF_FFFF_FFFF_FFFF


def id_prefix(name: str) -> int:
    """A non-default account's preferred id prefix (1..ID_PREFIXES), from its name
    alone, so its ids stay the same whatever else is configured (barring a collision)."""
    return 1 + mix64(name_code(name), 0x1D) % ID_PREFIXES


def token_for(name: str) -> str:
    """The token the count form gives an account."""
    return f"token-{name}"


def expand(value: Any) -> list[dict[str, str]] | None:
    """``accounts`` in any accepted form as a list of account objects (None: none).

    Accepts a list of objects, the count form (``{"stores": 3, "merchants": 2}``), or a
    string holding either as JSON, or ``stores=3,merchants=2``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] in "[{":
            value = json.loads(text)
        else:
            value = {}
            for part in text.split(","):
                key, sep, num = part.partition("=")
                if not sep:
                    raise ValueError("accounts: use stores=N,merchants=N or a JSON list of account objects")
                value[key.strip()] = num.strip()
    if isinstance(value, dict):
        unknown = set(value) - set(_COUNT_KEYS)
        if unknown:
            raise ValueError(f"accounts: unknown count key {sorted(unknown)[0]!r}; use stores and merchants")
        out: list[dict[str, str]] = []
        for key, provider in _COUNT_KEYS.items():
            count = int(value.get(key, 0))
            if count < 0:
                raise ValueError(f"accounts: {key} must be >= 0")
            for n in range(1, count + 1):
                name = f"store-{n}" if provider == NEXTCOMMERCE else f"MERCHANT{n}"
                out.append(
                    {("store" if provider == NEXTCOMMERCE else "merchant_id"): name, "token": token_for(name)}
                )
        return out
    if not isinstance(value, list):
        raise ValueError("accounts must be a list of account objects or a count form like stores=3")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"accounts[{i}] must be an object with store (or merchant_id) and token")
        out.append({str(k): str(v) for k, v in item.items() if v is not None})
    return out


def _key(cfg: Any) -> tuple[Any, ...]:
    return (
        cfg.seed,
        cfg.store,
        cfg.merchant_id,
        cfg.token,
        cfg.webhook_url,
        cfg.webhook_secret,
        json.dumps(cfg.accounts, sort_keys=True),
    )


def resolve(cfg: Any) -> dict[str, dict[str, Account]]:
    """``{provider: {name: Account}}`` for a config, the default accounts first.

    Raises ValueError (naming the account) for a bad entry, a duplicate name or a
    token used twice within a provider.
    """
    return _resolve(_key(cfg))


def by_token(cfg: Any, provider: str) -> dict[str, Account]:
    """``{token: Account}`` of one provider: which account a request's token opens."""
    return _by_token(_key(cfg), provider)


@lru_cache(maxsize=64)
def _by_token(key: tuple[Any, ...], provider: str) -> dict[str, Account]:
    return {a.token: a for a in _resolve(key)[provider].values()}


@lru_cache(maxsize=64)
def _resolve(key: tuple[Any, ...]) -> dict[str, dict[str, Account]]:
    seed, store, merchant_id, token, webhook_url, webhook_secret, accounts_json = key
    out: dict[str, dict[str, Account]] = {
        NEXTCOMMERCE: {
            store: Account(NEXTCOMMERCE, store, token, seed, 0, True, webhook_url, webhook_secret)
        },
        CLOVER: {
            merchant_id: Account(CLOVER, merchant_id, token, seed, 0, True, webhook_url, webhook_secret)
        },
    }
    bases: dict[str, dict[int, str]] = {NEXTCOMMERCE: {0: store}, CLOVER: {0: merchant_id}}
    tokens: dict[str, dict[str, str]] = {NEXTCOMMERCE: {token: store}, CLOVER: {token: merchant_id}}
    entries = json.loads(accounts_json) or []
    if len(entries) >= ID_PREFIXES:
        raise ValueError(f"accounts: at most {ID_PREFIXES - 1} accounts")
    for i, entry in enumerate(entries):
        where = f"accounts[{i}]"
        has_store, has_merchant = bool(entry.get("store")), bool(entry.get("merchant_id"))
        if has_store == has_merchant:
            raise ValueError(f"{where}: give exactly one of store (Next Commerce) or merchant_id (Clover)")
        provider = NEXTCOMMERCE if has_store else CLOVER
        name = str(entry["store"] if has_store else entry["merchant_id"])
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: {name!r} must be letters, digits, '-' or '_' (it goes in URL paths)")
        acc_token = entry.get("token")
        if not acc_token:
            raise ValueError(f"{where}: token is missing")
        unknown = set(entry) - {"store", "merchant_id", "token", "webhook_url", "webhook_secret"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        existing = out[provider].get(name)
        if existing is not None:
            if existing.default and acc_token == existing.token and len(entry) == 2:
                continue  # the default account listed again, identically: the same account
            raise ValueError(
                f"{where}: {name!r} is listed twice (or is the default account with another token)"
            )
        if acc_token in tokens[provider]:
            raise ValueError(f"{where}: {name!r} reuses the token of {tokens[provider][acc_token]!r}")
        prefix = id_prefix(name)
        while prefix * ID_SPAN in bases[provider]:  # taken by an earlier account: probe on
            prefix = prefix % ID_PREFIXES + 1
        base = prefix * ID_SPAN
        bases[provider][base] = name
        tokens[provider][acc_token] = name
        out[provider][name] = Account(
            provider,
            name,
            acc_token,
            account_seed(seed, name),
            base,
            False,
            entry.get("webhook_url") or webhook_url,
            entry.get("webhook_secret") or webhook_secret,
        )
    return out
