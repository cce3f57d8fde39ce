"""Progress of running predictions, for the page's analysis progress bar.

A client that wants progress sends a random ``progress_id`` (32 hex digits) with its upload and
polls ``GET /v1/progress/{progress_id}`` while it waits: ``queued`` (waiting for a worker), then
``running`` with the seconds of media analysed so far out of the total (from the predictor's
``progress`` callback), ``unknown`` before the upload is in and after the answer. An entry exists only while its request is admitted, so the board holds
at most ``workers + queue_size`` entries; it carries numbers only, nothing of the upload.
"""

from __future__ import annotations

import re
import threading

PROGRESS_ID = re.compile(r"^[0-9a-f]{32}$")


class ProgressBoard:
    """Thread-safe ``progress_id -> {"state", "done", "total"}``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}

    def add(self, key: str) -> bool:
        """Register a queued request; False if the id is already in use."""
        with self._lock:
            if key in self._entries:
                return False
            self._entries[key] = {"state": "queued", "done": 0.0, "total": None}
            return True

    def update(self, key: str, done: float, total: float | None, state: str = "running") -> None:
        with self._lock:
            if key in self._entries:
                self._entries[key] = {"state": state, "done": float(done),
                                      "total": None if total is None else float(total)}

    def get(self, key: str) -> dict | None:
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else dict(entry)

    def remove(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
