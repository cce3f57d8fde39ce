"""The core of batch extraction: what to extract (:class:`ExtractorSpec`), what happened to a file
(:class:`FileOutcome`), and :func:`extract_file`, which every executor runs on every file.

:func:`extract_file` computes the requested features of one file: cached entries are loaded, the
rest computed (the audio track is decoded once per sample rate and shared by every audio
extractor) and stored. Failures are recorded per extractor, never raised, except a cache that cannot
be written (a full disk, a lost mount): that :class:`~avemo.errors.CacheError` is no fault of the
file and every file after it would fail the same way, so it stops the run.

What the audio or video decoder says of the file while its features are computed (a truncated WAV:
the features are of the part that decoded; :mod:`avemo.media.decode`) is not logged where it is
said (a worker process, a Ray node) but goes into the outcome (``warnings``) and is stored with each
entry; an entry read from the cache brings its stored lines back (``cached_warnings``), so that a
run that reads the features can say so too, whichever executor computed them
(:attr:`~avemo.extraction.runner.ExtractionReport.warnings`). A command that reads a file's features
several times in one run (the benchmark extracts every feature first, then gathers them from the
cache for each set of inputs and each corpus) says each file's lines once: :func:`each_file_warned_once`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.cache.store import FeatureCache, said_of_cached
from avemo.digest import file_digest
from avemo.errors import AvemoError, CacheError, ConfigError, reason_of
from avemo.features.base import AudioExtractor, Extractor, Features, get_extractor
from avemo.media.decode import collecting_warnings

log = logging.getLogger(__name__)

#: the files whose decoder lines were said in the current :func:`each_file_warned_once` block, else None
_WARNED: ContextVar[set[str] | None] = ContextVar("avemo_warned_files", default=None)


@dataclass(frozen=True)
class ExtractorSpec:
    """A picklable description of an extractor: registry name + config overrides, and for audio
    extractors an optional perturbation of the signal: the keyword arguments of
    :class:`~avemo.features.audio.perturb.Perturbed` (``(("speed", 1.1),)``, ``(("pitch", -2.0),)``,
    ``(("channel", "noise_pink_5db"), ("seed", 0))``, babble ``("sources", (path, ...))``)."""

    name: str
    config: tuple[tuple[str, Any], ...] = ()
    perturb: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, *, perturb: dict[str, Any] | None = None, **config: Any) -> ExtractorSpec:
        def frozen(v):  # hashable, so specs can be compared and de-duplicated
            return tuple(frozen(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(name, tuple(sorted((k, frozen(v)) for k, v in config.items())),
                   tuple(sorted((k, frozen(v)) for k, v in (perturb or {}).items())))

    @classmethod
    def parse(cls, text: str) -> list[ExtractorSpec]:
        """Parse comma-separated registry names with optional ``:key=value`` config overrides.

        ``"mfcc,egemaps"``; ``"mfcc:n_mfcc=13:deltas=false,face_crops:fps=5:n_frames=null"``.
        Values are read as JSON when they parse (numbers, true/false/null, ``[112,112]``), else as text.
        """
        from avemo.config import parse_options

        items, depth, current = [], 0, ""
        for ch in text:  # split on commas outside brackets: size=[112,112] stays whole
            depth += {"[": 1, "]": -1}.get(ch, 0)
            if ch == "," and depth == 0:
                items.append(current)
                current = ""
            else:
                current += ch
        items.append(current)
        specs = []
        for item in items:
            if not item.strip():
                continue
            name, *pairs = [p.strip() for p in item.split(":")]
            specs.append(cls.of(name, **parse_options(pairs, f"feature {name!r}")))
        if not specs:
            raise ConfigError("no feature names given (e.g. --features mfcc,egemaps)")
        return list(dict.fromkeys(specs))

    def build(self) -> Extractor:
        extractor = get_extractor(self.name, **dict(self.config))
        if self.perturb:
            from avemo.features.audio.perturb import Perturbed

            if not isinstance(extractor, AudioExtractor):
                raise ConfigError(f"{self.name} is not an audio extractor: it cannot take an audio perturbation")
            extractor = Perturbed(extractor, **dict(self.perturb))
        return extractor


@dataclass
class FileOutcome:
    """What happened to one file."""

    path: str
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # extractor name -> one-line reason
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # what the decoder said of the file while computing
    cached_warnings: list[str] = field(default_factory=list)  # those stored with the entries read from the cache

    @property
    def ok(self) -> bool:
        return not self.errors

    def add_warnings(self, lines: Sequence[str], cached: bool = False) -> None:
        """Note the decoder's ``lines`` (said now, or stored with a ``cached`` entry), each once."""
        into = self.cached_warnings if cached else self.warnings
        into += [line for line in dict.fromkeys(lines) if line not in into]


def extract_file(
    path: str | Path,
    extractors: Sequence[Extractor],
    cache: FeatureCache,
    *,
    keep: bool = False,
) -> tuple[FileOutcome, dict[str, Features]]:
    """Compute (or load from ``cache``) the features of one file.

    Returns the outcome and, when ``keep`` is true, the features by extractor name
    (otherwise an empty dict: batch extraction only fills the cache). Raises
    :class:`~avemo.errors.CacheError` when an entry cannot be written (entries written before stay whole).
    """
    t0 = time.perf_counter()
    path = Path(path)
    outcome = FileOutcome(str(path))
    results: dict[str, Features] = {}
    try:
        digest = file_digest(path)
    except AvemoError as exc:
        outcome.errors = {ex.name: exc.reason for ex in extractors}
        outcome.seconds = time.perf_counter() - t0
        return outcome, results

    todo: list[tuple[Extractor, str]] = []
    for ex in extractors:
        key = cache.key(digest, ex.cache_spec())
        hit = read_entry(cache, key, ex, path)
        if hit is not None:
            outcome.cached.append(ex.name)
            outcome.add_warnings(hit[1], cached=True)
            if keep:
                results[ex.name] = ex.view(hit[0])
        else:
            todo.append((ex, key))

    signals: dict[int, tuple[np.ndarray | AvemoError, list[str]]] = {}
    for ex, key in todo:
        said: list[str] = []
        try:
            feats = _compute(ex, path, signals, said)
            _check_features(ex, feats)
            stored = ex.stored(feats)
        except Exception as exc:  # recorded per extractor, the batch goes on
            if not isinstance(exc, AvemoError):
                log.debug("extractor %s failed on %s", ex.name, path, exc_info=True)
            outcome.errors[ex.name] = reason_of(exc)
            continue
        finally:
            outcome.add_warnings(said)
        cache.put(key, stored, ex.cache_spec(), warnings=said)  # a CacheError (a full disk) stops the run: module doc
        outcome.computed.append(ex.name)
        if keep:
            results[ex.name] = feats
    outcome.seconds = time.perf_counter() - t0
    return outcome, results


def read_entry(cache: FeatureCache, key: str, ex: Extractor, path: str | Path
               ) -> tuple[dict[str, np.ndarray], list[str]] | None:
    """The cache entry of ``ex`` for ``path`` under ``key`` and its warnings (:meth:`FeatureCache.read
    <avemo.cache.store.FeatureCache.read>`), or None on a miss, and also when the entry is an earlier
    version's that this one would compute differently for this file (:meth:`Extractor.outdated`: the
    file's decoded audio is longer than it says); an earlier version's entry that holds is stored again as
    this version's (a cache that cannot be written only checks it again next time)."""
    hit = cache.read(key)
    old = None if hit is None else ex.outdated(hit[0])
    if old is None:
        return hit
    if _audio_longer(path, getattr(ex, "sample_rate", 16000), old[0]):
        return None
    try:
        cache.put(key, old[1], ex.cache_spec(), warnings=hit[1])
    except CacheError:
        pass
    return old[1], hit[1]


def _audio_longer(path: str | Path, sr: int, seconds: float) -> bool:
    """Whether the audio of ``path`` decoded at ``sr`` Hz holds more than ``seconds`` (decoding stops there);
    a file that cannot be decoded counts as longer: its features are computed again, and fail in one line."""
    from avemo.media import iter_audio

    limit, n = int(round(seconds * sr)), 0
    try:
        for block in iter_audio(path, sr, block_seconds=max(seconds, 1.0), warn=lambda _line: None):
            n += len(block)
            if n > limit:
                return True
    except AvemoError:
        return True
    return False


def _compute(ex: Extractor, path: Path, signals: dict[int, tuple[np.ndarray | AvemoError, list[str]]],
             said: list[str]) -> Features:
    """``ex``'s features of ``path``; what the decoder says meanwhile goes into ``said``. An audio
    extractor reads the track decoded at its sample rate, once per file (``signals``: the signal or
    the error, with what the decoder said while decoding it, shared by the audio extractors)."""
    try:
        with collecting_warnings(path) as lines:
            if not isinstance(ex, AudioExtractor):
                return ex.extract(path)
            sr = ex.sample_rate
            if sr not in signals:
                from avemo.media import load_audio

                with collecting_warnings(path) as decoding:
                    try:
                        signals[sr] = load_audio(path, sr=sr), decoding
                    except AvemoError as exc:
                        signals[sr] = exc, decoding
            signal, decoding = signals[sr]
            said += decoding
            if isinstance(signal, AvemoError):
                raise signal
            return ex.from_signal(signal, sr)
    finally:
        said += lines


def all_cached(path: str, extractors: Sequence[Extractor], cache: FeatureCache) -> FileOutcome | None:
    """A 'cached' outcome when every extractor's entry for ``path`` is present and readable, else None."""
    try:
        digest = file_digest(path)
    except AvemoError:
        return None  # the worker reports the error
    outcome = FileOutcome(str(path), cached=[ex.name for ex in extractors])
    for ex in extractors:
        hit = read_entry(cache, cache.key(digest, ex.cache_spec()), ex, path)
        if hit is None:
            return None
        outcome.add_warnings(hit[1], cached=True)
    return outcome


def _check_features(ex: Extractor, feats: Features) -> None:
    if not isinstance(feats, dict) or "x" not in feats:
        raise TypeError(f"extractor {ex.name} returned {type(feats).__name__} without an 'x' array")
    x = np.asarray(feats["x"])
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise TypeError(f"extractor {ex.name} produced NaN or infinite values")


def load_features(
    paths: Sequence[str | Path],
    extractor: Extractor,
    cache: FeatureCache,
) -> list[Features | AvemoError]:
    """Features of ``extractor`` for each path (computed and stored on a miss), or the error; what the
    decoder said of the files is logged (:func:`decoder_warnings`)."""
    out: list[Features | AvemoError] = []
    outcomes = []
    for p in paths:
        outcome, feats = extract_file(p, [extractor], cache, keep=True)
        outcomes.append(outcome)
        if outcome.errors:
            out.append(AvemoError(outcome.errors[extractor.name], p))
        else:
            out.append(feats[extractor.name])
    for line in decoder_warnings(not_yet_warned(outcomes)):
        log.warning(line)
    return out


def decoder_warnings(outcomes: Sequence[FileOutcome]) -> list[str]:
    """What the decoder said of the files of ``outcomes``: its lines, file name first, for those it
    decoded now, and one line for those whose features came from the cache with stored lines (how many,
    the first files), so that a run that reads features of a truncated file says so, once."""
    lines = [f"{o.path}: {line}" for o in outcomes for line in o.warnings]
    again = [o.path for o in outcomes if o.cached_warnings and not o.warnings]
    if again:
        lines.append(said_of_cached(again, "{n} file(s) have features from the cache that were", "audio or video",
                                    "the features are of what decoded"))
    return lines


@contextmanager
def each_file_warned_once() -> Iterator[None]:
    """Within the block (one run of a command; also a decorator), :func:`not_yet_warned` leaves out
    the files whose decoder lines were already said in it, so that a file is warned of once per run,
    not once when its features are computed and again each time they are read from the cache. An
    inner block belongs to the outer one's run."""
    token = _WARNED.set(set()) if _WARNED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _WARNED.reset(token)


def not_yet_warned(outcomes: Sequence[FileOutcome]) -> list[FileOutcome]:
    """``outcomes`` less those of files the decoder's lines were said of earlier in the run
    (:func:`each_file_warned_once`; outside such a block: all of them); the files of the others are
    noted as said. Pass the result to :func:`decoder_warnings`."""
    said = _WARNED.get()
    if said is None:
        return list(outcomes)
    fresh = [o for o in outcomes if o.path not in said]
    said.update(o.path for o in fresh if o.warnings or o.cached_warnings)
    return fresh


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
        hit = read_entry(cache, cache.key(digest, ex.cache_spec()), ex, path)
        if hit is not None:
            outcome.cached.append(ex.name)
            outcome.add_warnings(hit[1], cached=True)
        else:
            outcome.errors[ex.name] = reason
    return outcome
