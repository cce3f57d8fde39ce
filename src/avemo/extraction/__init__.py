"""Batch feature extraction through the cache (see :mod:`avemo.extraction.runner`)."""

from avemo.extraction.runner import (
    ExtractionReport,
    ExtractorSpec,
    FileOutcome,
    extract_file,
    load_features,
    run_extraction,
)

__all__ = ["ExtractionReport", "ExtractorSpec", "FileOutcome", "extract_file", "load_features", "run_extraction"]
