"""Batch extraction of text features through the cache (:func:`run_text_extraction`).

Text extractors (:class:`~avemo.features.base.TextExtractor`) read strings, not files: an entry's
key is the text's digest (:func:`avemo.digest.text_digest`) with the extractor's name, version and
config, so a sentence said in two clips (or two corpora) is embedded once. Texts are embedded in
chunks in this process (a pretrained text encoder is faster batched than spread over processes);
a failure of one text (an empty one) is recorded for its item, never raised; an encoder that cannot
be loaded (its weights folder: a :class:`~avemo.errors.CheckpointError`) stops the run in one line
naming the folder, as every text would fail alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from avemo.cache.store import FeatureCache, remove_orphan_temp_files
from avemo.digest import text_digest
from avemo.errors import AvemoError, CheckpointError, ConfigError, FeatureError
from avemo.extraction.core import ExtractorSpec, FileOutcome
from avemo.extraction.runner import ExtractionReport
from avemo.features.base import Features, TextExtractor

#: texts embedded between two progress reports
CHUNK = 256


def text_extractor(spec: ExtractorSpec) -> TextExtractor:
    """The text extractor of ``spec``, or a ConfigError when it reads media, not text."""
    extractor = spec.build()
    if not isinstance(extractor, TextExtractor):
        raise ConfigError(f"{spec.name} is a {extractor.modality} extractor, not a text extractor")
    return extractor


def _embed(extractor: TextExtractor, texts: list[str]) -> list[Features | AvemoError]:
    """Features of each text; one failing text fails alone (the encoder's weights fail them all: raised)."""
    try:
        return list(extractor.from_texts(texts))
    except CheckpointError:  # it listed every text as failed, "text encoder folder lacks ...", naming no folder
        raise
    except AvemoError:
        if len(texts) == 1:
            raise
    out: list[Features | AvemoError] = []
    for text in texts:
        try:
            out.append(extractor.from_text(text))
        except AvemoError as exc:
            out.append(exc)
    return out


def text_features(
    texts: Sequence[str], extractor: TextExtractor, cache: FeatureCache,
    progress: Callable[[int], None] | None = None,
) -> list[Features | AvemoError]:
    """Features of ``extractor`` for each text (computed and stored on a miss), or the error;
    ``progress`` receives the number of texts done after each chunk."""
    return _through_cache(texts, extractor, cache, progress)[0]


def _through_cache(
    texts: Sequence[str], extractor: TextExtractor, cache: FeatureCache, progress: Callable[[int], None] | None
) -> tuple[list[Features | AvemoError], set[int]]:
    """:func:`text_features` and the indices of the texts that were computed (not cached)."""
    spec = extractor.cache_spec()
    keys = [cache.key(text_digest(t), spec) for t in texts]
    out: list[Features | AvemoError | None] = [cache.get(k) for k in keys]
    todo: dict[str, list[int]] = {}
    for i, hit in enumerate(out):
        if hit is None:
            todo.setdefault(keys[i], []).append(i)
    computed = {i for rows in todo.values() for i in rows}
    if progress is not None and len(texts) > len(computed):
        progress(len(texts) - len(computed))
    pending = list(todo.values())
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start:start + CHUNK]
        for rows, feats in zip(chunk, _embed(extractor, [texts[r[0]] for r in chunk]), strict=True):
            if not isinstance(feats, AvemoError):
                cache.put(keys[rows[0]], feats, spec)
            for r in rows:
                out[r] = feats
        if progress is not None:
            progress(sum(len(r) for r in chunk))
    return out, computed  # type: ignore[return-value]


def run_text_extraction(
    items: Sequence[tuple[str, str | None]],
    specs: Sequence[ExtractorSpec],
    *,
    cache: FeatureCache,
    progress: Callable[[int], None] | None = None,
) -> ExtractionReport:
    """Extract the text ``specs`` of every ``(name, text)`` item into ``cache`` (``name`` names the
    item in the report: a clip's path or take); an item without text fails with that reason.
    ``progress`` receives the number of items done, per extractor, as they finish."""
    if not cache.enabled:
        raise ConfigError("batch extraction needs an enabled feature cache (its output goes there)")
    extractors = [text_extractor(s) for s in specs]
    t0 = time.perf_counter()
    outcomes = [FileOutcome(name) for name, _ in items]
    with_text = [i for i, (_, text) in enumerate(items) if text]
    for i, (_, text) in enumerate(items):
        if not text:
            outcomes[i].errors = {ex.name: "the clip has no text" for ex in extractors}
            if progress is not None:
                progress(len(extractors))
    try:
        for start in range(0, len(with_text), CHUNK):  # chunk by chunk: extractors of one encoder share its run
            rows = with_text[start:start + CHUNK]
            for ex in extractors:
                results, computed = _through_cache([items[i][1] for i in rows], ex, cache, progress)
                for j, (i, feats) in enumerate(zip(rows, results, strict=True)):
                    if isinstance(feats, AvemoError):
                        outcomes[i].errors[ex.name] = feats.reason
                    else:
                        (outcomes[i].computed if j in computed else outcomes[i].cached).append(ex.name)
    finally:  # a run killed while writing leaves a temporary file: sweep it
        remove_orphan_temp_files(cache.root)
    return ExtractionReport(outcomes, time.perf_counter() - t0, "in-process", 1)


def load_text_features(texts: Sequence[str], extractor: TextExtractor, cache: FeatureCache) -> list[Features]:
    """Features of each text through the cache; a FeatureError for the first text that fails."""
    out = text_features(texts, extractor, cache)
    for i, feats in enumerate(out):
        if isinstance(feats, AvemoError):
            raise FeatureError(f"{extractor.name} on text {i} ({texts[i][:40]!r}): {feats.reason}")
    return out  # type: ignore[return-value]
