"""Batch extraction on a Ray cluster (``avemo extract ... --executor ray [--address ADDR]``).

Files are grouped into small chunks, one Ray task per chunk. Each task runs the same
:func:`~avemo.extraction.runner.extract_file` as the local executor and writes straight
into the shared feature cache, so the cache keys and values are the same whichever
executor ran (the cache folder must be on a file system every node sees, e.g. NFS, or the
head node alone for a single machine). Only small outcome records travel back.

Fault tolerance comes from three pieces together:

* each cache entry is written atomically (a file is in the cache completely or not at all;
  the temporary file of a killed writer is swept after the run,
  :func:`avemo.cache.store.remove_orphan_temp_files`);
* Ray re-runs a task whose worker died (``max_retries``); the re-run finds the files its
  predecessor finished in the cache and only computes the rest (their outcomes say
  ``cached``);
* a chunk that still fails is split and its unfinished files are retried one per task, so
  a file that kills its worker every time (a decoder crash) fails alone, and files whose
  entries are all in the cache are reported as cached, not failed.

If the whole run is interrupted (Ctrl-C, the driver killed), running the command again
does only what is missing.

Where Ray runs (:func:`ray_session`):

* ``address=None``: a private local Ray instance on loopback with ``workers`` CPUs,
  stopped at the end of the run;
* ``address="HOST:PORT"`` (the head's GCS port, ``ray start --head --port PORT``),
  ``"ray://HOST:10001"`` (Ray Client) or ``"auto"`` (the cluster this machine belongs to):
  attach to a running cluster, use every CPU it has, and leave it running;
* a Ray already initialised in this process (a notebook, a test fixture) is used as it is.

Extractors registered outside avemo (a user's own ``@register_extractor`` class) travel
with the task: Ray pickles the class (by value when it lives in ``__main__``, by reference
otherwise, so its module must then be importable on every node).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from avemo.errors import ConfigError
from avemo.extraction.runner import ExtractorSpec, FileOutcome

log = logging.getLogger(__name__)

#: extractors built in this worker process, by (specs, extractor classes); reused by later tasks
_BUILT: dict[tuple, list] = {}


# ----------------------------------------------------------------------------- Ray session


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray: pip install 'avemo[ray]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ConfigError) when nothing listens at ``address``; Ray itself retries for minutes."""
    if address == "auto":
        return
    url = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto'")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start its head with "
            f"`ray start --head --port {port}` or check the address"
        ) from None


def _enable_token_auth_if_available() -> None:
    """Send this machine's Ray token when one exists and ``RAY_AUTH_MODE`` is not set.

    Recent Ray versions (2.60 here) start clusters with token authentication when a token exists
    (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``), but only
    ``address="auto"`` picks the token up by itself; an explicit address would then fail
    with "Authentication token is missing". A cluster without authentication accepts a
    client that sends a token, so sending it is harmless.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # Ray versions without token authentication
        return
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception as exc:  # pragma: no cover - never let this helper stop a run
        log.debug("could not enable Ray token authentication: %s", exc)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int = 2) -> Iterator:
    """The ``ray`` module, connected for the duration of the block (see module docstring).

    Only a Ray instance started here is stopped at the end.
    """
    ray = _import_ray()
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address is None:
            # "local": a new private instance, even when another cluster runs on this machine.
            # Ray announces at every start that it protects the instance with a token: not news here.
            quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
            finally:
                quiet.setLevel(level)
        else:
            _enable_token_auth_if_available()
            if address.startswith("ray://"):
                kwargs.pop("include_dashboard")
            ray.init(address=address, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ValueError...
        with contextlib.suppress(Exception):
            ray.shutdown()
        where = address or "a local instance"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "uthenticat" in str(exc) or "uthenticat" in repr(exc.__cause__):
            hint = " (the cluster wants its token: copy ~/.ray/auth_token from the head or set RAY_AUTH_TOKEN)"
        raise ConfigError(f"cannot start or reach the Ray cluster at {where}: {text}{hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------- worker side


def _extract_chunk(
    paths: list[str], specs: tuple[ExtractorSpec, ...], cache_root: str, classes: tuple[type, ...] = ()
) -> list[FileOutcome]:
    """Body of one Ray task (runs in a Ray worker process): extract ``paths`` into the cache."""
    from avemo.cache.store import FeatureCache
    from avemo.extraction.executors import ensure_registered, limit_threads
    from avemo.extraction.runner import extract_file

    key = (specs, tuple(f"{c.__module__}.{c.__qualname__}" for c in classes))
    extractors = _BUILT.get(key)
    if extractors is None:  # once per worker process, reused by its later tasks
        limit_threads()
        ensure_registered(classes)
        extractors = _BUILT[key] = [s.build() for s in specs]
    cache = FeatureCache(cache_root)
    return [extract_file(p, extractors, cache)[0] for p in paths]


# ----------------------------------------------------------------------------- driver side


class RayExecutor:
    """Runs extraction chunks as Ray tasks.

    ``workers``: the CPUs of a private local instance (``address=None``); on a running
    cluster the tasks use every CPU it has, and ``workers`` is set to that number.
    ``chunk_size``: files per task (default: about four chunks per CPU, at most 16 files).
    ``max_retries``: how often Ray re-runs a task whose worker died.
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, chunk_size: int | None = None,
                 max_retries: int = 3):
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
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
        from avemo.extraction.executors import extractor_classes

        classes = extractor_classes(specs)
        with ray_session(self.address, self.workers) as ray:
            cpus = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
            self.workers = cpus
            task = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_extract_chunk)
            todo = self.chunks(paths, cpus)
            todo.reverse()  # pop() from the end = submit in path order
            pending: dict = {}
            window = 2 * cpus  # every CPU busy plus one queued task each, without flooding the scheduler
            try:
                while todo or pending:
                    while todo and len(pending) < window:
                        chunk = todo.pop()
                        pending[task.remote(chunk, specs, cache_root, classes)] = chunk
                    # a timeout, so that Ctrl-C (KeyboardInterrupt) is seen within a second
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                    for ref in done:
                        chunk = pending.pop(ref)
                        try:
                            outcomes = ray.get(ref)
                        except Exception as exc:  # the task failed even after its retries
                            reason = _failure_reason(exc)
                            log.warning("Ray task for %d file(s) failed: %s", len(chunk), reason)
                            retry, outcomes = _settle_lost(chunk, specs, cache_root, reason)
                            if len(chunk) > 1:  # unfinished files again, one per task
                                todo.extend([p] for p in reversed(retry))
                                outcomes = [o for o in outcomes if o.path not in set(retry)]
                        yield from outcomes
            finally:
                if pending:  # interrupted: stop what is still queued or running, wait until it has
                    for ref in pending:
                        with contextlib.suppress(Exception):
                            ray.cancel(ref)
                    with contextlib.suppress(Exception):
                        ray.wait(list(pending), num_returns=len(pending), timeout=30)


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
    from avemo.cache.store import FeatureCache
    from avemo.extraction.executors import lost_file_outcome

    cache = FeatureCache(cache_root)
    extractors = [s.build() for s in specs]
    outcomes = [lost_file_outcome(p, extractors, cache, reason) for p in chunk]
    return [o.path for o in outcomes if o.errors], outcomes
