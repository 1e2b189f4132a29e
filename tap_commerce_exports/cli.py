"""Command-line entry point: the SDK's CLI, with user mistakes shown as one line."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from tap_commerce_exports.errors import AccountsFailed, ConfigError, UserError
from tap_commerce_exports.http.redact import scrub


def main(argv: list[str] | None = None) -> None:
    """Run ``tap-commerce-exports``; a :class:`UserError` ends it with one clear line."""
    from tap_commerce_exports.tap import TapCommerceExports, stopped_by_signal

    try:
        _check_json_files(sys.argv[1:] if argv is None else argv)
        _check_env_json(sys.argv[1:] if argv is None else argv)
        TapCommerceExports.cli.main(args=argv, prog_name="tap-commerce-exports", standalone_mode=False)
    except UserError as exc:
        # Several accounts failed: one line each, every one naming its account.
        for line in exc.lines if isinstance(exc, AccountsFailed) else [str(exc)]:
            report_error(f"tap-commerce-exports: error: {scrub(line)}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("tap-commerce-exports: interrupted; the last STATE emitted stands\n")
        _exit_promptly(130)
    except SystemExit as exc:
        if stopped_by_signal():
            _exit_promptly(exc.code if isinstance(exc.code, int) else 1)
        raise
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


def _exit_promptly(code: int) -> None:
    """After a stop signal the orderly stop is done (downloads cut, output flushed):
    exit now. The interpreter's own teardown (joining idle pool threads, freeing every
    module) can take a second on a busy machine, and the promise is to be gone by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # the reader is gone: nothing more to say to it
    logging.shutdown()
    os._exit(code)


def report_error(line: str) -> None:
    """The one line that ends a run, where its reader looks for it.

    Run by hand: written to stderr as it is. Run by a host that configures the SDK's logs
    (``SINGER_SDK_LOG_CONFIG``; Meltano does, in its structured JSON format): logged at
    ERROR through those handlers, so the host shows it as an error, not as an [info] line
    of stderr; still one line."""
    root = logging.getLogger()
    if os.environ.get("SINGER_SDK_LOG_CONFIG") and root.handlers:
        logging.getLogger("tap_commerce_exports").error("%s", line)
        for handler in root.handlers:
            handler.flush()
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _check_env_json(argv: list[str]) -> None:
    """With ``--config ENV`` the SDK parses list and object settings from environment
    variables itself, and a typo ends in its JSON library's traceback: say it in one line
    that names the variable (never its text: ``accounts`` holds tokens)."""
    from_env = "--config=ENV" in argv or any(
        a == "--config" and b == "ENV" for a, b in zip(argv, argv[1:], strict=False)
    )
    if not from_env:
        return
    from tap_commerce_exports.settings import CONFIG_SCHEMA

    for name, prop in CONFIG_SCHEMA["properties"].items():
        types = prop.get("type") or []
        if not {"array", "object"} & set([types] if isinstance(types, str) else types):
            continue
        variable = f"TAP_COMMERCE_EXPORTS_{name.upper()}"
        text = os.environ.get(variable)
        if text is None:
            continue
        try:
            json.loads(text)
        except ValueError:
            raise ConfigError(
                f"environment variable {variable} is not valid JSON: give setting '{name}' as JSON text"
            ) from None


def _check_json_files(argv: list[str]) -> None:
    """A --config/--state/--catalog file that is missing or not JSON is a user mistake:
    say so in one line (the SDK would end with a traceback)."""
    for i, arg in enumerate(argv):
        option, sep, value = arg.partition("=")
        if option not in ("--config", "--state", "--catalog"):
            continue
        if not sep:
            if i + 1 >= len(argv):
                continue
            value = argv[i + 1]
        if option == "--config" and value == "ENV":
            continue
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"{option} file '{value}' cannot be read ({reason}): check the path") from None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}" if text.strip() else "the file is empty"
            raise ConfigError(f"{option} file '{value}' is not valid JSON ({where}): fix the file") from None
        if option == "--state":
            from tap_commerce_exports.tap import TapCommerceExports

            TapCommerceExports.check_state(parsed)  # the SDK would take a list or a text for a path


if __name__ == "__main__":  # pragma: no cover
    main()
