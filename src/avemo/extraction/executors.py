"""Where batch extraction runs.

An executor takes file paths and extractor specs and yields one
:class:`~avemo.extraction.runner.FileOutcome` per file as files complete. Workers write
features straight into the shared cache; only the small outcome records travel back.

* ``local`` with ``workers=1``: in this process (easiest to debug).
* ``local`` with ``workers=N``: a pool of N processes (``spawn`` start method: safe with
  the threads that torch, mediapipe and FFmpeg start), each building its extractors once
  and limiting its math libraries to one thread, so N workers use N cores. Each worker
  gets one file at a time; a worker that dies fails only its current file and is replaced
  (:class:`ProcessPoolRunner`).
* ``ray``: Ray tasks on a local or remote cluster (:mod:`avemo.extraction.ray_executor`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from avemo.cache.store import FeatureCache, file_digest
from avemo.errors import AvemoError, ConfigError
from avemo.extraction.runner import ExtractorSpec, FileOutcome, extract_file
from avemo.features.base import Extractor


class Executor(Protocol):
    name: str  # "local" or "ray", as reported
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
    """Every file in this process, one after the other."""

    name = "local"
    workers = 1

    def run(self, paths, specs, cache_root):
        cache = FeatureCache(cache_root)
        extractors = [s.build() for s in specs]
        for path in paths:
            outcome, _ = extract_file(path, extractors, cache)
            yield outcome


def extractor_classes(specs: Sequence[ExtractorSpec]) -> tuple[type, ...]:
    """The classes of the extractors in ``specs`` that avemo itself does not define.

    They travel to the workers with the work, so that a user's own ``@register_extractor``
    classes run there too (the pool pickles them by reference: their module, or the main
    script, must be importable by the workers).
    """
    from avemo.features.base import extractor_class

    classes = {extractor_class(s.name) for s in specs}
    return tuple(sorted((c for c in classes if not c.__module__.startswith("avemo.")), key=lambda c: c.name))


def ensure_registered(classes: Sequence[type]) -> None:
    """Register extractor classes that came with the work (user extractors) in this worker."""
    from avemo.features.base import extractor_class, register_extractor

    for cls in classes:
        try:
            extractor_class(cls.name)
        except ConfigError:
            register_extractor(cls)


def lost_file_outcome(path: str, extractors: Sequence[Extractor], cache: FeatureCache, reason: str) -> FileOutcome:
    """The outcome of a file whose worker was lost: entries already in the cache count as
    ``cached`` (the worker finished them), the others fail with ``reason``."""
    outcome = FileOutcome(path)
    try:
        digest = file_digest(path)
    except AvemoError as exc:
        outcome.errors = {ex.name: exc.reason for ex in extractors}
        return outcome
    for ex in extractors:
        if cache.get(cache.key(digest, ex.cache_spec())) is not None:
            outcome.cached.append(ex.name)
        else:
            outcome.errors[ex.name] = reason
    return outcome


def _pool_worker(conn: Connection, specs: tuple[ExtractorSpec, ...], cache_root: str, classes: tuple[type, ...]) -> None:
    """Main loop of a pool process: receive a path, extract it into the cache, send the outcome back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    try:
        limit_threads()
        ensure_registered(classes)
        extractors = [s.build() for s in specs]
        cache = FeatureCache(cache_root)
    except BaseException as exc:  # reported once by the parent, for every file
        conn.send(("init_error", exc.reason if isinstance(exc, AvemoError) else f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if path is None:
            return
        conn.send(("done", extract_file(path, extractors, cache)[0]))


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
        ctx = mp.get_context("spawn")
        classes = extractor_classes(specs)
        todo = list(reversed(paths))  # pop() from the end = path order
        live: dict[int, _PoolWorker] = {}  # by id(conn)
        retired: list[_PoolWorker] = []
        startup_failures = 0
        extractors: list[Extractor] = []

        def start() -> None:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_pool_worker, args=(child, specs, cache_root, classes), daemon=True,
                                  name="avemo-extract")
            process.start()
            child.close()
            live[id(parent)] = _PoolWorker(process, parent)

        def feed(worker: _PoolWorker) -> None:
            if not todo:  # nothing left: let it exit
                worker.path = None
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
                retired.append(live.pop(id(worker.conn)))
                return
            worker.path = todo.pop()
            try:
                worker.conn.send(worker.path)
            except OSError:  # it died just now: the file goes back, its death is handled next
                todo.append(worker.path)
                worker.path = None

        def fail_queued(reason: str) -> Iterator[FileOutcome]:
            while todo:
                yield FileOutcome(todo.pop(), errors={s.name: reason for s in specs})

        try:
            for _ in range(min(self.workers, len(paths))):
                start()
            while live:
                by_handle = {}
                for w in live.values():
                    by_handle[w.conn] = w
                    by_handle[w.process.sentinel] = w
                for handle in wait(list(by_handle)):
                    worker = by_handle[handle]
                    if id(worker.conn) not in live:
                        continue  # already handled through its other handle
                    message, eof = None, False
                    if worker.conn.poll():
                        try:
                            message = worker.conn.recv()
                        except (EOFError, OSError):
                            eof = True
                    if message is None:
                        if not eof and worker.process.is_alive():
                            continue  # woken up without news
                        worker.process.join(timeout=30)  # it has exited, or is exiting (EOF on its pipe)
                        if worker.process.is_alive():  # stuck on its way out
                            worker.process.kill()
                            worker.process.join()
                        live.pop(id(worker.conn))
                        worker.conn.close()
                        how = _how_it_ended(worker.process.exitcode)
                        if worker.path is not None:
                            if not extractors:
                                extractors = [s.build() for s in specs]
                            reason = f"worker process died while extracting this file ({how})"
                            yield lost_file_outcome(worker.path, extractors, FeatureCache(cache_root), reason)
                        if not worker.ready:
                            startup_failures += 1
                            if startup_failures >= self.max_startup_failures:
                                yield from fail_queued(
                                    f"worker processes die at start-up ({how}); in a script, start the "
                                    "extraction under `if __name__ == '__main__':`"
                                )
                        if todo and len(live) < self.workers:
                            start()
                        continue
                    kind, payload = message
                    worker.ready = True
                    if kind == "init_error":  # it exits by itself; the same would happen to any other
                        yield from fail_queued(f"worker failed to start: {payload}")
                        continue
                    startup_failures = 0
                    if kind == "done":
                        worker.path = None
                        yield payload
                    feed(worker)
        finally:
            for w in list(live.values()):  # interrupted: stop the workers still running
                if w.process.is_alive():
                    w.process.terminate()
                retired.append(w)
            for w in retired:
                w.process.join(timeout=10)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join()
                w.conn.close()


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
