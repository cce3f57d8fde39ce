"""Content-addressed feature cache (see :mod:`avemo.cache.store`)."""

from avemo.cache.store import FeatureCache, default_cache_dir
from avemo.digest import file_digest

__all__ = ["FeatureCache", "default_cache_dir", "file_digest"]
