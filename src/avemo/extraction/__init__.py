"""Batch feature extraction through the cache.

Three layers, each importing only the ones before it:

* :mod:`avemo.extraction.core`: what to extract (:class:`ExtractorSpec`), what happened to a file
  (:class:`FileOutcome`) and :func:`extract_file`, which every executor runs on every file;
* :mod:`avemo.extraction.workers`: what runs inside a worker process (pool process or Ray task);
* :mod:`avemo.extraction.executors`: where the files are processed (this process, a local pool,
  Ray), and :mod:`avemo.extraction.runner`: :func:`run_extraction`, which drives an executor over
  many files and reports.
"""

from avemo.extraction.core import ExtractorSpec, FileOutcome, extract_file, load_features
from avemo.extraction.runner import ExtractionReport, run_extraction

__all__ = ["ExtractionReport", "ExtractorSpec", "FileOutcome", "extract_file", "load_features", "run_extraction"]
