"""A bounded pool of prediction threads with admission control, and the gate of the uploads.

A request passes two admissions. While its upload is received it holds a place of the
:class:`Gate` of uploads (at most ``max_uploads``), not a prediction slot: a client that sends a
few bytes and stalls cannot keep the prediction threads from the others. Once the upload is in,
it reserves a :class:`Slot` of the pool, which holds at most ``workers + queue_size`` slots; when
the pool is full the request is refused (503), at once if it already was when the request
arrived. A slot is given back when its job ends, not when the request gives up waiting (after a
504 the thread still finishes its job, and the slot stays taken until it does), so the count
always matches the real work in flight.

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

    @property
    def full(self) -> bool:
        """Whether a reservation would be refused now."""
        return self.in_use >= self.capacity

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


class Gate:
    """At most ``limit`` requests in one stage at once (the uploads being received); used from the
    event loop only."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    def try_enter(self) -> bool:
        """Take a place; False when all are taken (the request is refused)."""
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1
