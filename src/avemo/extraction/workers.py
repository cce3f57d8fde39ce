"""What runs inside a worker process of batch extraction (a pool process or a Ray worker).

A worker builds its extractors once (:func:`build_extractors`, with one math-library thread:
the pool or the cluster provides the parallelism), registers the user's own extractor classes
that came with the work (:func:`ensure_registered`), and runs
:func:`~avemo.extraction.core.extract_file` on each file it is given, writing straight into the
shared feature cache; only the small :class:`~avemo.extraction.core.FileOutcome` records travel
back to the driver.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection

from avemo.cache.store import FeatureCache
from avemo.errors import AvemoError, CacheError, ConfigError
from avemo.extraction.core import ExtractorSpec, FileOutcome, extract_file
from avemo.features.base import Extractor, extractor_class, register_extractor
from avemo.parallel import limit_threads

#: extractors built in this worker process, by (specs, extractor classes); reused by later tasks
_BUILT: dict[tuple, list[Extractor]] = {}


def extractor_classes(specs: Sequence[ExtractorSpec]) -> tuple[type, ...]:
    """The classes of the extractors in ``specs`` that avemo itself does not define.

    They travel to the workers with the work, so that a user's own ``@register_extractor``
    classes run there too (the pool pickles them by reference: their module, or the main
    script, must be importable by the workers; Ray pickles a class of ``__main__`` by value).
    """
    classes = {extractor_class(s.name) for s in specs}
    return tuple(sorted((c for c in classes if not c.__module__.startswith("avemo.")), key=lambda c: c.name))


def ensure_registered(classes: Sequence[type]) -> None:
    """Register extractor classes that came with the work (user extractors) in this worker."""
    for cls in classes:
        try:
            extractor_class(cls.name)
        except ConfigError:
            register_extractor(cls)


def build_extractors(specs: tuple[ExtractorSpec, ...], classes: tuple[type, ...]) -> list[Extractor]:
    """The extractors of ``specs`` in this worker process: built once, reused by its later tasks."""
    key = (specs, tuple(f"{c.__module__}.{c.__qualname__}" for c in classes))
    extractors = _BUILT.get(key)
    if extractors is None:
        limit_threads()
        ensure_registered(classes)
        extractors = _BUILT[key] = [s.build() for s in specs]
    return extractors


def extract_chunk(
    paths: list[str], specs: tuple[ExtractorSpec, ...], cache_root: str, classes: tuple[type, ...] = ()
) -> list[FileOutcome]:
    """Body of one Ray task (runs in a Ray worker process): extract ``paths`` into the cache."""
    extractors = build_extractors(specs, classes)
    cache = FeatureCache(cache_root)
    return [extract_file(p, extractors, cache)[0] for p in paths]


def pool_worker(conn: Connection, specs: tuple[ExtractorSpec, ...], cache_root: str, classes: tuple[type, ...]) -> None:
    """Main loop of a pool process: receive a path, extract it into the cache, send the outcome back.

    Messages to the parent: ``("ready", None)`` once, or ``("init_error", reason)`` when the
    extractors cannot be built; then ``("done", FileOutcome)`` per file, or ``("cache_error",
    CacheError)`` when the cache cannot be written (a full disk), after which the worker exits.
    ``None`` from the parent (or its pipe closing) ends the loop.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    try:
        extractors = build_extractors(specs, classes)
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
        try:
            outcome = extract_file(path, extractors, cache)[0]
        except CacheError as exc:  # the parent stops the run with it
            conn.send(("cache_error", exc))
            return
        conn.send(("done", outcome))
