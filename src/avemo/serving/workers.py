"""A bounded pool of prediction threads with admission control.

A request reserves a :class:`Slot` *before* its upload is read; the pool holds at most
``workers + queue_size`` slots, so when it is full the request is refused at once (503) instead
of piling up uploads on disk and waiting without bound. A slot is given back when its job ends,
not when the request gives up waiting (after a 504 the thread still finishes its job, and the
slot stays taken until it does), so the count always matches the real work in flight.

Threads, not processes: the model is loaded once and shared, and PyAV decoding and torch
release the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class PoolFull(Exception):
    """Every slot is taken: the request must be refused (503)."""


class Slot:
    """One admitted request. Submit at most one job; the slot is released when that job ends
    (or by :meth:`release` when no job was submitted, e.g. the upload was refused)."""

    def __init__(self, pool: PredictionPool):
        self._pool = pool
        self._released = False
        self.future: Future | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self.future is not None:
            raise RuntimeError("a slot runs one job")
        self.future = self._pool._executor.submit(fn, *args)
        self.future.add_done_callback(lambda _f: self._release())
        return self.future

    def release(self) -> None:
        """Give the slot back if no job holds it (a submitted job releases it when it ends)."""
        if self.future is None:
            self._release()

    def _release(self) -> None:
        with self._pool._lock:
            if not self._released:
                self._released = True
                self._pool._taken -= 1


class PredictionPool:
    """``workers`` threads, ``workers + queue_size`` admitted requests at most."""

    def __init__(self, workers: int, queue_size: int):
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avemo-predict")
        self._lock = threading.Lock()
        self._taken = 0

    def reserve(self) -> Slot:
        """A slot, or :class:`PoolFull` when ``capacity`` requests are already admitted."""
        with self._lock:
            if self._taken >= self.capacity:
                raise PoolFull()
            self._taken += 1
        return Slot(self)

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._taken

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
