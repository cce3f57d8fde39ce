"""The package version, in a module of its own so that any layer can name it without importing
the package façade (``avemo/__init__.py``, which re-exports the top-level API)."""

__version__ = "0.1.0"
