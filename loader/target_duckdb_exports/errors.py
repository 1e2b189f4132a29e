"""The one error the loader explains in a single line (the CLI prints it, no traceback)."""

from __future__ import annotations


class LoaderError(Exception):
    """A problem the user fixes: a setting, a file that is gone, a table that disagrees."""
