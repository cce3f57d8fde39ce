"""Where batch extraction runs.

An executor takes file paths and extractor specs and yields one
:class:`~avemo.extraction.runner.FileOutcome` per file as files complete. Workers write
features straight into the shared cache; only the small outcome records travel back.

* ``local`` with ``workers=1``: in this process (easiest to debug).
* ``local`` with ``workers=N``: a pool of N processes (``spawn`` start method: safe with
  the threads that torch, mediapipe and FFmpeg start), each building its extractors once
  and limiting its math libraries to one thread, so N workers use N cores.
* ``ray``: Ray tasks on a local or remote cluster (:mod:`avemo.extraction.ray_executor`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol

from avemo.cache.store import FeatureCache
from avemo.errors import ConfigError
from avemo.extraction.runner import ExtractorSpec, FileOutcome, extract_file


class Executor(Protocol):
    workers: int

    def run(self, paths: Sequence[str], specs: tuple[ExtractorSpec, ...], cache_root: str) -> Iterator[FileOutcome]:
        ...


def limit_threads() -> None:
    """One thread per worker for BLAS/OpenMP, torch and OpenCV (the pool provides the parallelism)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


class InProcessExecutor:
    workers = 1

    def run(self, paths, specs, cache_root):
        cache = FeatureCache(cache_root)
        extractors = [s.build() for s in specs]
        for path in paths:
            outcome, _ = extract_file(path, extractors, cache)
            yield outcome


_worker_state: dict = {}


def _init_worker(specs: tuple[ExtractorSpec, ...], cache_root: str) -> None:
    limit_threads()
    _worker_state["extractors"] = [s.build() for s in specs]
    _worker_state["cache"] = FeatureCache(cache_root)


def _work(path: str) -> FileOutcome:
    outcome, _ = extract_file(path, _worker_state["extractors"], _worker_state["cache"])
    return outcome


class ProcessPoolRunner:
    def __init__(self, workers: int):
        self.workers = workers

    def run(self, paths, specs, cache_root):
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(specs, cache_root)
        ) as pool:
            futures = {pool.submit(_work, p): p for p in paths}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as exc:  # a worker died (killed, out of memory): report the file
                    yield FileOutcome(futures[fut], errors={s.name: f"worker failed ({type(exc).__name__}: {exc})" for s in specs})


def get_executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if name == "local":
        if address is not None:
            raise ConfigError("--address is only meaningful with --executor ray")
        return InProcessExecutor() if workers == 1 else ProcessPoolRunner(workers)
    if name == "ray":
        from avemo.extraction.ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address)
    raise ConfigError(f"unknown executor {name!r}; use 'local' or 'ray'")
