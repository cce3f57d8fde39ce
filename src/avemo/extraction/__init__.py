"""Batch feature extraction through the cache.

Three layers, each importing only the ones before it:

* :mod:`avemo.extraction.core`: what to extract (:class:`ExtractorSpec`), what happened to a file
  (:class:`FileOutcome`) and :func:`extract_file`, which every executor runs on every file;
* :mod:`avemo.extraction.workers`: what runs inside a worker process (pool process or Ray task);
* :mod:`avemo.extraction.executors`: where the files are processed (this process, a local pool,
  Ray), and :mod:`avemo.extraction.runner`: :func:`run_extraction`, which drives an executor over
  many files and reports;
* :mod:`avemo.extraction.text`: :func:`run_text_extraction` and :func:`text_features`, the same
  for text extractors, whose inputs are strings (a clip's text) keyed by their digest.
"""

from avemo.extraction.core import ExtractorSpec, FileOutcome, extract_file, load_features
from avemo.extraction.runner import ExtractionReport, run_extraction
from avemo.extraction.text import load_text_features, run_text_extraction, text_features

__all__ = [
    "ExtractionReport",
    "ExtractorSpec",
    "FileOutcome",
    "extract_file",
    "load_features",
    "load_text_features",
    "run_extraction",
    "run_text_extraction",
    "text_features",
]
