"""Work on several processes and machines: one Ray session helper and one scheduling loop.

Batch extraction (:class:`avemo.extraction.executors.RayExecutor`) and the benchmark runner
(:func:`avemo.evaluation.benchmark.run_benchmark` with ``executor="ray"``) both run here:

* :func:`ray_session` connects to Ray for the duration of a block (see its docstring for the
  addresses it accepts) and stops only a Ray instance it started itself;
* :func:`scheduled` is the one scheduling loop: at most ``window`` tasks in flight (every CPU busy
  plus one queued task each, without flooding the scheduler), results as tasks complete, and on
  the way out (done, failed or interrupted) the tasks still in flight are cancelled and waited for
  (up to ``stop_timeout`` seconds), so that nothing keeps running behind the caller's back;
* :func:`ray_map` maps a function over argument tuples on top of it (results in task order);
* :func:`limit_threads` gives a worker process one math-library thread (the pool or the cluster
  provides the parallelism).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from avemo.errors import AvemoError, ConfigError

log = logging.getLogger(__name__)

#: seconds an interrupted run waits for its cancelled tasks to stop
STOP_TIMEOUT = 30.0


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


# ----------------------------------------------------------------------------- Ray session


def import_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray: pip install 'avemo[ray]'") from None
    return ray


#: what an HTTP/2 client sends first: the connection preface and an empty SETTINGS frame
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ConfigError) when nothing listens at ``address`` (``"auto"``: at the address it stands
    for, :func:`_auto_address`), or something that is not Ray; Ray itself retries for minutes (over ten
    when a server of another kind answers, the dashboard's port 8265 given for the head's 6379: it waits
    40 s for a cluster ID, twenty times)."""
    shown = address
    if address == "auto":
        address = _auto_address()
        if address is None:  # no cluster known on this machine: Ray says so in one line
            return
        shown = f"{address} (what --address auto finds: RAY_ADDRESS, else the cluster last started on this machine)"
    url = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto'")
    client = url.scheme == "ray"
    where = ("start the cluster's head (its Ray Client server listens on port 10001 by default)"
             if client else f"start its head with `ray start --head --port {port}`")
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            answer = _first_answer(conn)
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {shown} ({exc.strerror or exc}); {where} or check "
                          "the address") from None
    if answer is not None and (len(answer) < 4 or answer[3] != 4):  # not an HTTP/2 SETTINGS frame
        said = answer.split(b"\n", 1)[0].strip().decode("ascii", "replace")[:40]
        raise ConfigError(f"{shown} answers, but is no Ray cluster (it does not speak gRPC"
                          f"{f'; it said {said!r}' if said else ''}): give the port of "
                          + ("the head's Ray Client server (10001 by default)" if client else
                             "the head's `ray start --head --port` (6379 by default; 8265 is the dashboard's)"))


def _auto_address() -> str | None:
    """The address ``--address auto`` stands for, as Ray finds it (``RAY_ADDRESS``, else the cluster last
    started on this machine, ``/tmp/ray/ray_current_cluster``), or None when none is known (a head that
    was killed leaves its address behind, where Ray then retried for minutes)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # another Ray version, an address Ray cannot parse: Ray itself says what is wrong
        return None


def _first_answer(conn: socket.socket) -> bytes | None:
    """What the server at ``conn`` answers an HTTP/2 client's first bytes: Ray's GCS and its Ray Client
    server speak gRPC, so they answer with a SETTINGS frame (its 4th byte is 4); None when it cannot
    be told (no answer in time, or TLS, ``RAY_USE_TLS``, where the first bytes are a TLS handshake)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return None
    try:
        conn.sendall(_HTTP2_HELLO)
        return conn.recv(64)
    except TimeoutError:
        return None
    except OSError:  # reset on the first bytes: it is not gRPC either
        return b""


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
        with _no_token_notice():  # "Token authentication is enabled for this Ray cluster": not known, nor news
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception as exc:  # pragma: no cover - never let this helper stop a run
        log.debug("could not enable Ray token authentication: %s", exc)


@contextlib.contextmanager
def _no_token_notice() -> Iterator[None]:
    """Within the block, Ray's notices about token authentication (its warnings) are not said."""
    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quiet.setLevel(level)


def _init_ray(ray, address: str | None, num_cpus: int) -> None:
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address is None:
        # "local": a new private instance, even when another cluster runs on this machine.
        # Ray announces at every start that it protects the instance with a token: not news here.
        with _no_token_notice():
            ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
        return
    _enable_token_auth_if_available()
    if address.startswith("ray://"):
        kwargs.pop("include_dashboard")
    ray.init(address=address, **kwargs)


@contextlib.contextmanager
def _interrupt_held(hold: bool) -> Iterator[list]:
    """Within the block (when ``hold`` and in the main thread), Ctrl-C (SIGINT) is noted in the
    list it gives instead of raising KeyboardInterrupt, so that the block is not cut short."""
    noted: list = []
    if not hold or threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = signal.signal(signal.SIGINT, lambda *_: noted.append(True))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _start_ray(ray, address: str | None, num_cpus: int) -> None:
    """``ray.init`` as :func:`ray_session` describes it; its failures are one ConfigError line.

    Ctrl-C while a private instance starts ends the start (``ray.shutdown``) before it raises
    KeyboardInterrupt: cut short in the middle of ``ray.init``, the half-started instance is no
    instance Ray knows of, and its agents outlive the command (with no raylet to serve).
    """
    with _interrupt_held(address is None) as interrupted:
        try:
            _init_ray(ray, address, num_cpus)
        except ConfigError:
            raise
        except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ValueError...
            with contextlib.suppress(Exception):
                ray.shutdown()
            if interrupted:  # the start failed because Ctrl-C stopped its processes too
                raise KeyboardInterrupt from None
            where = address or "a local instance"
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = ""
            if "uthenticat" in str(exc) or "uthenticat" in repr(exc.__cause__):
                hint = " (the cluster wants its token: copy ~/.ray/auth_token from the head or set RAY_AUTH_TOKEN)"
            raise ConfigError(f"cannot start or reach the Ray cluster at {where}: {text}{hint}") from None
    if interrupted:
        ray.shutdown()
        raise KeyboardInterrupt


def _opening(text: str, limit: int = 200) -> str:
    """``text`` on one line: its sentences that fit in ``limit`` characters (at least
    the first, cut at ``limit``)."""
    sentences = re.split(r"(?<=\.)\s+", " ".join(text.split()))
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + 1 + len(sentence) > limit:
            break
        kept += " " + sentence
    kept = kept.removesuffix(" Error:").strip()
    return kept if len(kept) <= limit else kept[: limit - 3] + "..."


@contextlib.contextmanager
def _ray_notices_in_one_line() -> Iterator[None]:
    """Within the block, what the raylets publish to the driver (a worker that died, a task Ray runs
    again), which Ray prints to stdout as a paragraph, is one warning line: its first sentences."""
    try:
        from ray._private import worker
        original = worker.print_to_stdstream
    except (ImportError, AttributeError):  # another Ray version: its notices as it prints them
        yield
        return

    def one_line(data, *args, **kwargs):
        if data.get("pid") != "raylet":
            return original(data, *args, **kwargs)
        for text in data.get("lines", ()):
            log.warning("Ray: %s", _opening(str(text)))
        return None

    worker.print_to_stdstream = one_line
    try:
        yield
    finally:
        worker.print_to_stdstream = original


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int = 2) -> Iterator:
    """The ``ray`` module, connected for the duration of the block.

    * ``address=None``: a private local Ray instance on loopback with ``num_cpus`` CPUs,
      stopped at the end of the block;
    * ``address="HOST:PORT"`` (the head's GCS port, ``ray start --head --port PORT``),
      ``"ray://HOST:10001"`` (Ray Client) or ``"auto"`` (the cluster this machine belongs to):
      attach to a running cluster and leave it running;
    * a Ray already initialised in this process (a notebook, a test fixture) is used as it is.

    Only a Ray instance started here is stopped at the end.
    """
    ray = import_ray()
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _start_ray(ray, address, num_cpus)
    try:
        with _ray_notices_in_one_line():
            yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray, default: int) -> int:
    """The CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", default)))


# ----------------------------------------------------------------------------- the scheduling loop


def scheduled(
    ray,
    submit: Callable[[Any], Any],
    queue: deque,
    *,
    window: int,
    stop_timeout: float = STOP_TIMEOUT,
) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """Run every task of ``queue`` on Ray, at most ``window`` at a time; yield
    ``(task, result, None)`` or ``(task, None, error)`` as each completes.

    ``submit(task)`` starts one task and returns its object ref. Tasks are taken from the left of
    ``queue``; the caller may add tasks to it while iterating (retries). Ray is polled every
    second, so that Ctrl-C (KeyboardInterrupt) is seen promptly. When the loop ends early (an
    exception, the generator closed), the tasks in flight are cancelled and waited for.
    """
    if window < 1:
        raise ConfigError(f"the scheduling window must be at least 1, got {window}")
    pending: dict = {}
    try:
        while queue or pending:
            while queue and len(pending) < window:
                task = queue.popleft()
                pending[submit(task)] = task
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task failed (after Ray's own retries)
                    yield task, None, exc
                else:
                    yield task, result, None
    finally:
        if pending:  # interrupted: stop what is still queued or running, wait until it has
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            with contextlib.suppress(Exception):
                ray.wait(list(pending), num_returns=len(pending), timeout=stop_timeout)


def _call_in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    limit_threads()
    return fn(*args)


def ray_map(
    fn: Callable[..., Any],
    tasks: Sequence[Sequence[Any]],
    *,
    address: str | None = None,
    workers: int = 2,
    progress: Callable[[Any], None] | None = None,
) -> Iterator[Any]:
    """``fn(*task)`` for every task, one Ray task each (one CPU, one math thread); results in task order.

    Each distinct argument object (a data bundle, splits, configs) goes to Ray's object store once
    and is shared by every task that needs it, instead of being pickled into each task. On a
    cluster with GPUs every task reserves one (Ray points the task's ``CUDA_VISIBLE_DEVICES`` at
    it, so tasks train side by side, one per GPU). ``progress(result)`` is called as each task
    completes. A task that raises an avemo error re-raises it here as it is (one line, no remote
    traceback); the other tasks are then cancelled.
    """
    with ray_session(address, workers) as ray:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(_call_in_worker)
        shared: dict[int, Any] = {}

        def by_ref(arg: Any) -> Any:
            if isinstance(arg, str | int | float | bool) or arg is None:
                return arg
            if id(arg) not in shared:
                shared[id(arg)] = ray.put(arg)
            return shared[id(arg)]

        def submit(i: int):
            return remote.remote(fn, *(by_ref(a) for a in tasks[i]))

        results: dict[int, Any] = {}
        window = 2 * cluster_cpus(ray, workers)
        for i, result, error in scheduled(ray, submit, deque(range(len(tasks))), window=window):
            if error is not None:
                cause = getattr(error, "cause", None)
                if isinstance(cause, AvemoError):
                    raise cause from None
                raise error
            results[i] = result
            if progress is not None:
                progress(result)
        yield from (results[i] for i in range(len(tasks)))

