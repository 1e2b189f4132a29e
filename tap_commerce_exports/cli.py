"""Command-line entry point: the SDK's CLI, with user mistakes shown as one line."""

from __future__ import annotations

import sys

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.http.redact import scrub


def main(argv: list[str] | None = None) -> None:
    """Run ``tap-commerce-exports``; a :class:`UserError` ends it with one clear line."""
    from tap_commerce_exports.tap import TapCommerceExports

    try:
        TapCommerceExports.cli.main(args=argv, prog_name="tap-commerce-exports",
                                    standalone_mode=False)
    except UserError as exc:
        sys.stderr.write(f"tap-commerce-exports: error: {scrub(str(exc))}\n")
        sys.stderr.flush()
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("tap-commerce-exports: interrupted; the last STATE emitted stands\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors etc.
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
