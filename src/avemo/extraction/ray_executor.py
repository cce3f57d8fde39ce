"""Batch extraction on a Ray cluster (``avemo extract ... --executor ray [--address ADDR]``).

Files are grouped into small chunks, one Ray task per chunk. Each task runs the same
:func:`~avemo.extraction.runner.extract_file` as the local executor and writes straight
into the shared feature cache, so the cache keys and values are the same whichever
executor ran (the cache folder must be on a file system every node sees, e.g. NFS, or the
head node alone for a single machine). Only small outcome records travel back.

Fault tolerance comes from the two halves together: each cache entry is written atomically
(a file is in the cache completely or not at all), and Ray re-runs a task whose worker
died (``max_retries``); a re-run finds the files its predecessor finished in the cache and
only computes the rest. If the whole run is interrupted, running the command again does
only what is missing.

``address=None`` starts a private local Ray instance on loopback with ``workers`` CPUs and
stops it at the end; an address (``ray://...``, ``HOST:PORT`` or ``auto``) attaches to a
running cluster (``ray start --head`` / ``ray start --address=...``) and leaves it running.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

from avemo.errors import ConfigError
from avemo.extraction.runner import ExtractorSpec, FileOutcome

log = logging.getLogger(__name__)

_BUILT: dict[tuple, list] = {}


def _extract_chunk(paths: list[str], specs: tuple[ExtractorSpec, ...], cache_root: str) -> list[FileOutcome]:
    """Body of one Ray task (runs in a Ray worker process)."""
    from avemo.cache.store import FeatureCache
    from avemo.extraction.executors import limit_threads
    from avemo.extraction.runner import extract_file

    key = (specs, cache_root)
    if key not in _BUILT:  # once per worker process, reused by its later tasks
        limit_threads()
        _BUILT[key] = [s.build() for s in specs]
    cache = FeatureCache(cache_root)
    return [extract_file(p, _BUILT[key], cache)[0] for p in paths]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray: pip install 'avemo[ray]'") from None
    return ray


class RayExecutor:
    """Runs extraction chunks as Ray tasks; ``workers`` bounds the tasks in flight."""

    def __init__(self, workers: int = 2, address: str | None = None, chunk_size: int | None = None,
                 max_retries: int = 3):
        self.workers = workers
        self.address = address
        self.chunk_size = chunk_size
        self.max_retries = max_retries

    def _chunks(self, paths: Sequence[str]) -> list[list[str]]:
        size = self.chunk_size or max(1, min(16, len(paths) // (self.workers * 4) or 1))
        return [list(paths[i : i + size]) for i in range(0, len(paths), size)]

    def run(self, paths: Sequence[str], specs: tuple[ExtractorSpec, ...], cache_root: str) -> Iterator[FileOutcome]:
        ray = _import_ray()
        started_here = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            try:
                if self.address is None:
                    ray.init(num_cpus=self.workers, _node_ip_address="127.0.0.1", **kwargs)
                else:
                    ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local instance"
                raise ConfigError(f"cannot start or reach the Ray cluster at {where}: {exc}") from None
            started_here = True
        try:
            task = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_extract_chunk)
            pending: dict = {}
            chunks = iter(self._chunks(paths))
            window = self.workers * 2  # keep every worker busy without flooding the scheduler

            def submit() -> bool:
                chunk = next(chunks, None)
                if chunk is None:
                    return False
                pending[task.remote(chunk, specs, cache_root)] = chunk
                return True

            while len(pending) < window and submit():
                pass
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                chunk = pending.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except Exception as exc:  # the task failed even after its retries
                    reason = f"Ray task failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                    outcomes = [FileOutcome(p, errors={s.name: reason for s in specs}) for p in chunk]
                yield from outcomes
                submit()
        finally:
            if started_here:
                ray.shutdown()
