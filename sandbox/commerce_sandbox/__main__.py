"""``tap-commerce-exports-sandbox`` / ``python -m commerce_sandbox``.

Every :class:`SandboxConfig` field is a ``--kebab-case`` flag (booleans also accept
``--no-...``; ``--rows-per-day`` and ``--large-file-rows`` take ``N`` or
``type=N,type=N`` or a JSON object; ``--accounts`` takes ``stores=N,merchants=N`` or a
JSON list). Prints one flushed line with the URLs, token, merchant id and every further
account's name, so a script can wait for it, then serves until SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, Union, get_args, get_origin, get_type_hints

from commerce_sandbox.config import SandboxConfig, coerce
from commerce_sandbox.server import SandboxServer


def build_parser() -> argparse.ArgumentParser:
    """One flag per config field, generated so the CLI can never fall behind the config."""
    parser = argparse.ArgumentParser(
        prog="tap-commerce-exports-sandbox",
        description="Emulate the Next Commerce and Clover export APIs on a loopback HTTP server.",
    )
    hints = get_type_hints(SandboxConfig)
    for f in dataclasses.fields(SandboxConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = hint
        if get_origin(hint) is Union:
            args = [a for a in get_args(hint) if a is not type(None)]
            base = args[0] if len(args) == 1 else str
        if base is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default: {f.default})",
            )
        else:
            parser.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=f"(default: {f.default})"
            )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request to stderr")
    return parser


def config_from_args(ns: argparse.Namespace) -> SandboxConfig:
    """A config from parsed flags; unset flags keep the defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(SandboxConfig):
        raw = getattr(ns, f.name)
        if raw is not None:
            values[f.name] = coerce(f.name, raw)
    return SandboxConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad flags."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        cfg = config_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.DEBUG if ns.verbose else logging.WARNING,
        stream=sys.stderr,
        format="sandbox: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = SandboxServer(cfg).start()
    try:
        print(
            f"sandbox listening: api_url={server.api_url} clover_url={server.clover_url} "
            f"token={cfg.token} merchant_id={cfg.merchant_id}"
            + "".join(
                f" account={a.get('store') or a['merchant_id']}"
                for a in server.accounts()
                if not a["default"]
            ),
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
