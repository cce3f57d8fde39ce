"""Where batch extraction runs.

An executor takes file paths and extractor specs and yields one
:class:`~avemo.extraction.core.FileOutcome` per file as files complete. Workers write
features straight into the shared cache; only the small outcome records travel back.

* ``local`` with ``workers=1``: in this process (easiest to debug), :class:`InProcessExecutor`.
* ``local`` with ``workers=N``: a pool of N processes (``spawn`` start method: safe with
  the threads that torch, mediapipe and FFmpeg start), each building its extractors once
  and limiting its math libraries to one thread, so N workers use N cores. Each worker
  gets one file at a time; a worker that dies fails only its current file and is replaced
  (:class:`ProcessPoolRunner`).
* ``ray``: Ray tasks on a local or remote cluster (:class:`RayExecutor`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from avemo.cache.store import FeatureCache
from avemo.errors import CacheError, ConfigError
from avemo.extraction.core import ExtractorSpec, FileOutcome, extract_file, lost_file_outcome
from avemo.extraction.workers import extract_chunk, extractor_classes, pool_worker
from avemo.features.base import Extractor
from avemo.parallel import cluster_cpus, ray_session, scheduled

log = logging.getLogger(__name__)


class Executor(Protocol):
    name: str  # "local" or "ray", as reported
    workers: int

    def run(self, paths: Sequence[str], specs: tuple[ExtractorSpec, ...], cache_root: str) -> Iterator[FileOutcome]:
        ...


class InProcessExecutor:
    """Every file in this process, one after the other."""

    name = "local"
    workers = 1

    def run(self, paths, specs, cache_root):
        cache = FeatureCache(cache_root)
        extractors = [s.build() for s in specs]
        for path in paths:
            outcome, _ = extract_file(path, extractors, cache)
            yield outcome


# ----------------------------------------------------------------------------- local process pool


@dataclass
class _PoolWorker:
    process: BaseProcess
    conn: Connection
    path: str | None = None  # the file it is working on
    ready: bool = False


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class _PoolRun:
    """The state of one :meth:`ProcessPoolRunner.run`: the files left, the live and retired workers."""

    def __init__(self, runner: ProcessPoolRunner, paths: Sequence[str], specs: tuple[ExtractorSpec, ...],
                 cache_root: str):
        self.runner, self.specs, self.cache_root = runner, specs, cache_root
        self.ctx = mp.get_context("spawn")
        self.classes = extractor_classes(specs)
        self.todo = list(reversed(paths))  # pop() from the end = path order
        self.live: dict[int, _PoolWorker] = {}  # by id(conn)
        self.retired: list[_PoolWorker] = []
        self.startup_failures = 0
        self.extractors: list[Extractor] = []  # built on the first lost file

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        process = self.ctx.Process(target=pool_worker, args=(child, self.specs, self.cache_root, self.classes),
                                   daemon=True, name="avemo-extract")
        process.start()
        child.close()
        self.live[id(parent)] = _PoolWorker(process, parent)

    def feed(self, worker: _PoolWorker) -> None:
        """Send the worker the next file, or let it exit when none is left."""
        if not self.todo:
            worker.path = None
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            self.retired.append(self.live.pop(id(worker.conn)))
            return
        worker.path = self.todo.pop()
        try:
            worker.conn.send(worker.path)
        except OSError:  # it died just now: the file goes back, its death is handled next
            self.todo.append(worker.path)
            worker.path = None

    def fail_queued(self, reason: str) -> Iterator[FileOutcome]:
        while self.todo:
            yield FileOutcome(self.todo.pop(), errors={s.name: reason for s in self.specs})

    def receive(self, worker: _PoolWorker) -> tuple[tuple | None, bool]:
        """``(message or None, whether its pipe reached EOF)``."""
        if worker.conn.poll():
            try:
                return worker.conn.recv(), False
            except (EOFError, OSError):
                return None, True
        return None, False

    def bury(self, worker: _PoolWorker) -> Iterator[FileOutcome]:
        """A worker has exited (or is exiting): report its file as lost, replace it if work is left."""
        worker.process.join(timeout=30)
        if worker.process.is_alive():  # stuck on its way out
            worker.process.kill()
            worker.process.join()
        self.live.pop(id(worker.conn))
        worker.conn.close()
        how = _how_it_ended(worker.process.exitcode)
        if worker.path is not None:
            if not self.extractors:
                self.extractors = [s.build() for s in self.specs]
            reason = f"worker process died while extracting this file ({how})"
            yield lost_file_outcome(worker.path, self.extractors, FeatureCache(self.cache_root), reason)
        if not worker.ready:
            self.startup_failures += 1
            if self.startup_failures >= self.runner.max_startup_failures:
                yield from self.fail_queued(f"worker processes die at start-up ({how}); in a script, start the "
                                            "extraction under `if __name__ == '__main__':`")
        if self.todo and len(self.live) < self.runner.workers:
            self.start()

    def handle(self, worker: _PoolWorker, message: tuple) -> Iterator[FileOutcome]:
        kind, payload = message
        worker.ready = True
        if kind == "init_error":  # it exits by itself; the same would happen to any other
            yield from self.fail_queued(f"worker failed to start: {payload}")
            return
        if kind == "cache_error":  # the cache cannot be written: every file would fail, stop the run
            raise payload
        self.startup_failures = 0
        if kind == "done":
            worker.path = None
            yield payload
        self.feed(worker)

    def loop(self) -> Iterator[FileOutcome]:
        while self.live:
            by_handle = {}
            for w in self.live.values():
                by_handle[w.conn] = w
                by_handle[w.process.sentinel] = w
            for handle in wait(list(by_handle)):
                worker = by_handle[handle]
                if id(worker.conn) not in self.live:
                    continue  # already handled through its other handle
                message, eof = self.receive(worker)
                if message is not None:
                    yield from self.handle(worker, message)
                elif eof or not worker.process.is_alive():
                    yield from self.bury(worker)
                # else: woken up without news

    def stop(self) -> None:
        for w in list(self.live.values()):  # interrupted: stop the workers still running
            if w.process.is_alive():
                w.process.terminate()
            self.retired.append(w)
        for w in self.retired:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()


class ProcessPoolRunner:
    """``workers`` processes (``spawn``), one file at a time each, fed as they finish.

    A worker that dies (killed, out of memory, a crash in native code) loses only the file it
    was working on: that file is reported as failed (entries it had already written count as
    cached) and a new process takes the worker's place for the remaining files. The file is
    not retried here (it may be the cause); running the command again retries it. When
    workers die at start-up ``max_startup_failures`` times in a row, the remaining files fail.
    """

    name = "local"

    def __init__(self, workers: int, max_startup_failures: int = 3):
        self.workers = workers
        self.max_startup_failures = max_startup_failures

    def run(self, paths, specs, cache_root):
        if not paths:
            return
        run = _PoolRun(self, paths, specs, cache_root)
        try:
            for _ in range(min(self.workers, len(paths))):
                run.start()
            yield from run.loop()
        finally:
            run.stop()


# ----------------------------------------------------------------------------- Ray


class RayExecutor:
    """Runs extraction chunks as Ray tasks (``avemo extract ... --executor ray [--address ADDR]``).

    Files are grouped into small chunks, one Ray task per chunk. Each task runs the same
    :func:`~avemo.extraction.core.extract_file` as the local executors and writes straight into
    the shared feature cache, so the cache keys and values are the same whichever executor ran
    (the cache folder must be on a file system every node sees, e.g. NFS, or the head node alone
    for a single machine). Where Ray runs: :func:`avemo.parallel.ray_session`.

    Fault tolerance comes from three pieces together:

    * each cache entry is written atomically (a file is in the cache completely or not at all;
      the temporary file of a killed writer is swept after the run,
      :func:`avemo.cache.store.remove_orphan_temp_files`);
    * Ray re-runs a task whose worker died (``max_retries``); the re-run finds the files its
      predecessor finished in the cache and only computes the rest (their outcomes say ``cached``);
    * a chunk that still fails is split and its unfinished files are retried one per task, so a
      file that kills its worker every time (a decoder crash) fails alone, and files whose
      entries are all in the cache are reported as cached, not failed.

    If the whole run is interrupted (Ctrl-C, the driver killed), running the command again does
    only what is missing. Extractors registered outside avemo travel with the task
    (:func:`~avemo.extraction.workers.extractor_classes`).

    ``workers``: the CPUs of a private local instance (``address=None``); on a running
    cluster the tasks use every CPU it has, and ``workers`` is set to that number.
    ``chunk_size``: files per task (default: about four chunks per CPU, at most 16 files).
    ``max_retries``: how often Ray re-runs a task whose worker died.
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, chunk_size: int | None = None,
                 max_retries: int = 3):
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
        self.workers = workers
        self.address = address
        self.chunk_size = chunk_size
        self.max_retries = max_retries

    def chunks(self, paths: Sequence[str], cpus: int) -> list[list[str]]:
        """Consecutive groups of files, one per task: small enough to balance the load and to
        lose little when a worker dies, large enough that Ray's per-task cost (about a
        millisecond) stays negligible."""
        size = self.chunk_size or max(1, min(16, math.ceil(len(paths) / (4 * cpus))))
        return [list(paths[i : i + size]) for i in range(0, len(paths), size)]

    def run(self, paths: Sequence[str], specs: tuple[ExtractorSpec, ...], cache_root: str) -> Iterator[FileOutcome]:
        """Yield one outcome per path as chunks complete; closing the generator cancels the rest."""
        if not paths:
            return
        classes = extractor_classes(specs)
        with ray_session(self.address, self.workers) as ray:
            cpus = self.workers = cluster_cpus(ray, self.workers)
            task = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(extract_chunk)
            queue = deque(self.chunks(paths, cpus))
            for chunk, outcomes, error in scheduled(ray, lambda c: task.remote(c, specs, cache_root, classes), queue,
                                                    window=2 * cpus):
                if error is not None:  # the task failed even after its retries
                    if isinstance(getattr(error, "cause", None), CacheError):
                        raise error.cause from None  # the cache cannot be written: every file would fail
                    reason = _failure_reason(error)
                    log.warning("Ray task for %d file(s) failed: %s", len(chunk), reason)
                    retry, outcomes = _settle_lost(chunk, specs, cache_root, reason)
                    if len(chunk) > 1:  # unfinished files again, next, one per task
                        queue.extendleft([p] for p in reversed(retry))
                        outcomes = [o for o in outcomes if o.path not in set(retry)]
                yield from outcomes


def _failure_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Ray task failed ({type(exc).__name__}{': ' + text if text else ''})"


def _settle_lost(
    chunk: Sequence[str], specs: tuple[ExtractorSpec, ...], cache_root: str, reason: str
) -> tuple[list[str], list[FileOutcome]]:
    """Outcomes of a chunk whose task was lost: what its worker finished is in the cache.

    Returns the files with missing entries and one outcome per file (``cached`` for the
    entries present, ``reason`` for the others).
    """
    cache = FeatureCache(cache_root)
    extractors = [s.build() for s in specs]
    outcomes = [lost_file_outcome(p, extractors, cache, reason) for p in chunk]
    return [o.path for o in outcomes if o.errors], outcomes


def get_executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if name == "local":
        if address is not None:
            raise ConfigError(f"an address ({address}) is only meaningful with the ray executor, not local")
        return InProcessExecutor() if workers == 1 else ProcessPoolRunner(workers)
    if name == "ray":
        return RayExecutor(workers=workers, address=address)
    raise ConfigError(f"unknown executor {name!r}; use 'local' or 'ray'")
