"""Run feature extractors over many files, through the cache, on an executor.

:func:`run_extraction` runs :func:`~avemo.extraction.core.extract_file` for many files on an
executor (in-process, a local process pool, or Ray -- see :mod:`avemo.extraction.executors`) and
returns an :class:`ExtractionReport` listing what was computed, what came from the cache and what
failed, and why, and what the decoder said of the files (:attr:`ExtractionReport.warnings`: the
caller says it, a command on stderr).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avemo.cache.store import FeatureCache, remove_orphan_temp_files
from avemo.errors import ConfigError
from avemo.extraction.core import ExtractorSpec, FileOutcome, all_cached, decoder_warnings
from avemo.extraction.executors import InProcessExecutor, get_executor


@dataclass
class ExtractionReport:
    """Summary of a batch: per-file outcomes, wall time and the executor used; ``started``: whether the
    executor ran at all (False when every file's features were in the cache, so that no worker pool
    was started and no Ray cluster contacted)."""

    outcomes: list[FileOutcome]
    seconds: float
    executor: str
    workers: int
    started: bool = True

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def n_computed(self) -> int:
        return sum(len(o.computed) for o in self.outcomes)

    @property
    def n_cached(self) -> int:
        return sum(len(o.cached) for o in self.outcomes)

    @property
    def warnings(self) -> list[str]:
        """What the decoder said of the files (a truncated WAV), one line per line for the files decoded
        now, one line for all those whose features came from the cache with stored lines
        (:func:`~avemo.extraction.core.decoder_warnings`)."""
        return decoder_warnings(self.outcomes)

    @classmethod
    def merge(cls, reports: Sequence[ExtractionReport]) -> ExtractionReport:
        """One report of several runs over (partly) the same items: outcomes of one path merged."""
        by_path: dict[str, FileOutcome] = {}
        for report in reports:
            for o in report.outcomes:
                into = by_path.setdefault(o.path, FileOutcome(o.path))
                into.computed += o.computed
                into.cached += o.cached
                into.errors.update(o.errors)
                into.seconds += o.seconds
                into.add_warnings(o.warnings)
                into.add_warnings(o.cached_warnings, cached=True)
        return cls(list(by_path.values()), sum(r.seconds for r in reports),
                   " + ".join(dict.fromkeys(r.executor for r in reports)), max((r.workers for r in reports), default=1),
                   any(r.started for r in reports))

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.outcomes),
            "computed": self.n_computed,
            "cached": self.n_cached,
            "failed": [{"path": o.path, "errors": o.errors} for o in self.failed],
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "executor": self.executor,
            "workers": self.workers,
            "executor_started": self.started,
        }


def run_extraction(
    paths: Iterable[str | Path],
    specs: Sequence[ExtractorSpec],
    *,
    cache: FeatureCache,
    workers: int = 1,
    executor: str | Any = "local",
    address: str | None = None,
    progress: Callable[[FileOutcome], None] | None = None,
) -> ExtractionReport:
    """Extract ``specs`` for every path into ``cache``; failures are listed, not raised, except a
    cache that cannot be written (a full disk): that :class:`~avemo.errors.CacheError` stops the run
    at once, whatever the executor (the entries written until then stay, whole).

    ``executor``: ``"local"`` (``workers`` processes; 1 = in this process), ``"ray"``
    (tasks on a Ray cluster at ``address``; a local one when None), or an executor object
    (e.g. ``RayExecutor(chunk_size=4, max_retries=1)``; ``workers`` and ``address`` are
    then its own).
    """
    paths = [str(p) for p in paths]
    if not cache.enabled:
        raise ConfigError("batch extraction needs an enabled feature cache (its output goes there)")
    for spec in specs:  # fail fast on unknown names / bad config, before any work starts
        spec.build()
    t0 = time.perf_counter()
    if isinstance(executor, str):
        runner = get_executor(executor, workers=workers, address=address)
    else:
        runner, executor = executor, getattr(executor, "name", type(executor).__name__)
    outcomes = []

    def done(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)

    todo = paths
    if not isinstance(runner, InProcessExecutor):
        # files whose every feature is cached need no worker (a warm re-run starts no pool)
        extractors = [s.build() for s in specs]
        todo = []
        for path in paths:
            hit = all_cached(path, extractors, cache)
            if hit is None:
                todo.append(path)
            else:
                done(hit)
    if todo:
        try:
            for outcome in runner.run(todo, tuple(specs), str(cache.root)):
                done(outcome)
        finally:  # a worker killed while writing leaves a temporary file: sweep it
            remove_orphan_temp_files(cache.root)
    order = {p: i for i, p in enumerate(paths)}
    outcomes.sort(key=lambda o: order.get(o.path, len(order)))
    started = bool(todo) or isinstance(runner, InProcessExecutor)
    return ExtractionReport(outcomes, time.perf_counter() - t0, executor, runner.workers, started)
