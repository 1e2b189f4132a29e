"""tap-commerce-exports: a Singer tap for commerce platforms' asynchronous export APIs."""

__all__ = ["__version__"]
__version__ = "0.1.0"
