"""Counters, rate limiters and fault switches: everything that makes the sandbox say no.

The point of the sandbox is to show that the tap survives what the real APIs do on a
bad day, and that it behaves well while doing so. So every refusal is both
*deterministic* (count-based, never random) and *counted* in :class:`Stats`, which
tests read back through ``/_sandbox/stats`` (e.g. "the tap never sent its token to the
file host", "never more than 5 concurrent Clover requests").
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import defaultdict, deque
from typing import Any


def credential_fingerprint(credential: str) -> str:
    """A short SHA-256 of a credential: the sandbox's stats say which credentials reached
    it (e.g. "a production token never did") without ever holding one."""
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()[:16]


class Stats:
    """Thread-safe counters, exported as one JSON object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.credentials: set[str] = set()
        self.requests: dict[str, int] = defaultdict(int)
        self.exports_created: dict[str, int] = {"nextcommerce": 0, "clover": 0}
        self.counters: dict[str, int] = defaultdict(int)
        self.maxima: dict[str, int] = defaultdict(int)
        #: {(provider, account): {counter: n}}: what a multi-account test asks per account.
        self.per_account: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def account_incr(self, provider: str, account: str, name: str, by: int = 1) -> None:
        """Count ``name`` for one account (``requests``, ``unauthorized``...)."""
        with self._lock:
            self.per_account[(provider, account)][name] += by

    def account_max(self, provider: str, account: str, name: str, value: int) -> None:
        """Keep the largest ``value`` seen under ``name`` for one account."""
        with self._lock:
            counters = self.per_account[(provider, account)]
            if value > counters[name]:
                counters[name] = value

    def request(self, kind: str) -> None:
        """One request of ``kind`` (``nc_create``, ``clover_file``...)."""
        with self._lock:
            self.requests[kind] += 1

    def credential_seen(self, authorization: str) -> None:
        """An ``Authorization`` header arrived: keep its token's fingerprint (the value
        after the scheme, the whole header if it has none)."""
        scheme, _, token = authorization.strip().partition(" ")
        with self._lock:
            self.credentials.add(credential_fingerprint(token.strip() or scheme))

    def incr(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counters[name] += by

    def export_created(self, provider: str, account: str) -> None:
        with self._lock:
            self.exports_created[provider] += 1
            self.per_account[(provider, account)]["exports_created"] += 1

    def observe_max(self, name: str, value: int) -> None:
        """Keep the largest ``value`` seen under ``name``."""
        with self._lock:
            if value > self.maxima[name]:
                self.maxima[name] = value

    def snapshot(self) -> dict[str, Any]:
        """All counters; every documented key is present even when zero."""
        with self._lock:
            out: dict[str, Any] = {
                "requests": dict(self.requests),
                "exports_created": dict(self.exports_created),
                "credential_fingerprints": sorted(self.credentials),
            }
            for name in (
                "429s_sent",
                "503s_sent",
                "500s_sent",
                "auth_header_on_file_host",
                "downloads_served",
                "truncated_downloads_sent",
                "downloads_held",
                "expired_url_answers",
                "bad_signature_answers",
                "webhooks_sent",
                "webhook_failures",
                "exports_failed",
                "create_answers_lost",
            ):
                out[name] = self.counters.get(name, 0)
            for name, value in self.counters.items():  # counters other modules add
                out.setdefault(name, value)
            out["max_concurrent_clover_requests"] = self.maxima.get("clover_concurrent", 0)
            #: The most exports one merchant had running (the cap is per merchant)...
            out["max_clover_exports_running"] = self.maxima.get("clover_running", 0)
            #: ...and all merchants together.
            out["max_clover_exports_running_all"] = self.maxima.get("clover_running_all", 0)
            out["max_concurrent_clover_requests_app"] = self.maxima.get("clover_concurrent_app", 0)
            by_account: dict[str, dict[str, dict[str, int]]] = {"nextcommerce": {}, "clover": {}}
            for (provider, account), counters in sorted(self.per_account.items()):
                entry = {k: 0 for k in ("requests", "exports_created", "unauthorized")}
                entry.update(counters)
                by_account.setdefault(provider, {})[account] = entry
            #: {provider: {account: {"requests", "exports_created", "unauthorized", ...}}}
            out["by_account"] = by_account
            return out

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.credentials.clear()
            self.exports_created = {"nextcommerce": 0, "clover": 0}
            self.counters.clear()
            self.maxima.clear()
            self.per_account.clear()


class SlidingWindowLimiter:
    """At most ``rate`` accepted requests per rolling second, per key (token).

    Refused requests are not counted as accepted, so a client that backs off for the
    announced Retry-After always gets through again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, rate: float, now: float) -> bool:
        if rate <= 0:
            return True
        limit = max(1, math.floor(rate))
        with self._lock:
            hits = self._hits[key]
            while hits and now - hits[0] >= 1.0:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True


class CloverPenalty:
    """Clover's documented twist: calling again before ``retry-after`` passed makes the
    next wait longer. Each early call doubles the wait (capped at 60 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = defaultdict(int)

    def check(self, key: str, now: float, base: int) -> int | None:
        """Seconds to announce if ``key`` is still in its penalty box, else None."""
        with self._lock:
            until = self._until.get(key)
            if until is None or now >= until:
                self._strikes[key] = 0
                return None
            self._strikes[key] += 1
            wait = min(60, max(1, base) << self._strikes[key])  # base * 2**strikes
            self._until[key] = now + wait
            return wait

    def punish(self, key: str, now: float, base: int) -> int:
        """Start a penalty of ``base`` seconds (a fresh 429); return the wait."""
        with self._lock:
            wait = max(1, base)
            self._until[key] = now + wait
            return wait


class Concurrency:
    """In-flight request counter per key, reporting the maximum it ever saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = defaultdict(int)

    def enter(self, key: str) -> int:
        with self._lock:
            self._inflight[key] += 1
            return self._inflight[key]

    def leave(self, key: str) -> None:
        with self._lock:
            self._inflight[key] -= 1


class FileAttempts:
    """How often each file was asked for, so "the FIRST download fails" is exact."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = defaultdict(int)
        self._served: dict[str, int] = defaultdict(int)

    def attempt(self, file_key: str) -> int:
        """Register a download attempt; return its 1-based number."""
        with self._lock:
            self._attempts[file_key] += 1
            return self._attempts[file_key]

    def serve(self, file_key: str) -> int:
        """Register a served (non-403) download; return its 1-based number."""
        with self._lock:
            self._served[file_key] += 1
            return self._served[file_key]


def in_clover_hours(region: str, epoch_s: float) -> bool:
    """Whether Clover accepts new exports at ``epoch_s`` (UTC), per the published windows.

    US: every day 10:00-15:00. EU: Mon-Fri 01:00-05:00, Sat 02:00-05:00, Sun
    02:00-06:00. ``off`` (the sandbox host): always.
    """
    from datetime import datetime, timezone

    if region == "off":
        return True
    now = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    hour = now.hour + now.minute / 60 + now.second / 3600
    if region == "us":
        return 10 <= hour < 15
    weekday = now.weekday()  # Monday = 0
    if weekday <= 4:
        return 1 <= hour < 5
    if weekday == 5:
        return 2 <= hour < 5
    return 2 <= hour < 6
