"""tap-commerce-exports: a Singer tap for commerce platforms' asynchronous export APIs."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]
try:
    #: The installed distribution's version: the git tag it was built from (setuptools-scm).
    __version__ = version("tap-commerce-exports")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"
