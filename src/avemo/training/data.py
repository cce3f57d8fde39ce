"""From takes to the raw arrays a model consumes, following the model's declared inputs.

A model says what it consumes (``model.inputs``: name -> :class:`~avemo.models.InputSpec`);
:func:`gather` fetches exactly that for a list of takes, without special cases:

* an input whose ``feature`` is a table name (``openface_au_means``) is looked up by take;
* any other input is a registered feature extractor, run (through the cache, in parallel)
  on the take's audio file for audio inputs and its video file for video inputs.

The arrays are then standardised (:class:`~avemo.models.normalization.Normalizer`) and batched
(:class:`~avemo.models.batching.TensorData`) as every place that runs a model does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.cache.store import FeatureCache
from avemo.datasets.labels import LabelSet
from avemo.datasets.pairing import Take
from avemo.datasets.records import Clip
from avemo.errors import AvemoError, ConfigError, DatasetError
from avemo.features.base import extractor_class, list_extractors
from avemo.models.inputs import InputSpec

log = logging.getLogger(__name__)


@dataclass
class Gathered:
    """Raw (not normalised) inputs of the takes that have all of them."""

    takes: list[Take]
    inputs: dict[str, list[np.ndarray]]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file or take, reason)

    def __len__(self) -> int:
        return len(self.takes)

    def labels(self, label_set: LabelSet) -> np.ndarray:
        return np.array([label_set.index(t.emotion) for t in self.takes], dtype=np.int64)

    @property
    def speakers(self) -> list[str]:
        return [t.speaker for t in self.takes]

    def subset(self, index: Sequence[int]) -> Gathered:
        return Gathered([self.takes[i] for i in index], {k: [v[i] for i in index] for k, v in self.inputs.items()})


def gather(
    takes: Sequence[Take],
    specs: Mapping[str, InputSpec],
    *,
    tables: Mapping[str, Any] | None = None,
    cache: FeatureCache,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    perturb: Mapping[str, Any] | None = None,
) -> Gathered:
    """Fetch every input of ``specs`` for ``takes``; takes missing any input are listed in ``failed``.

    ``tables``: name -> :class:`~avemo.datasets.tables.VisualTable` for table inputs.
    ``progress(input_name, done, total)`` is called as extraction proceeds.
    ``perturb``: e.g. ``{"speed": 1.1}`` or ``{"channel": "mp3_16k", "seed": 0}`` (the keyword
    arguments of :class:`~avemo.features.audio.perturb.Perturbed`): audio-extractor inputs are
    computed on the perturbed signal (augmentation, degraded-audio benchmarks); tables and video
    inputs are unchanged.

    What the decoder said of the files (a truncated WAV: the features are of what decoded) is logged,
    once whatever the number of inputs: its lines for the files decoded now, one line for those whose
    features came from the cache with the lines stored when they were made.
    """
    tables = dict(tables or {})
    check_tables(specs, tables)  # before any input is extracted
    arrays: dict[str, dict[str, np.ndarray]] = {name: {} for name in specs}
    failed: dict[str, str] = {}
    said: list[str] = []  # what the decoder cut short (a truncated WAV), once for all the inputs
    for name, spec in specs.items():
        if spec.feature in tables:
            _from_table(takes, spec, tables[spec.feature], arrays[name], failed)
            continue

        def tick(done: int, total: int, name: str = name) -> None:
            if progress is not None:
                progress(name, done, total)

        if extractor_class(spec.feature).modality == "text":
            _from_text(takes, spec, arrays[name], failed, cache=cache, progress=tick)
            continue
        extraction = {"cache": cache, "workers": workers, "executor": executor, "address": address}
        said += _from_extractor(takes, spec, arrays[name], failed, perturb=perturb, progress=tick, **extraction)
    for line in dict.fromkeys(said):
        log.warning(line)
    kept = [t for t in takes if t.key not in failed]
    return Gathered(
        takes=kept,
        inputs={name: [arrays[name][t.key] for t in kept] for name in specs},
        failed=sorted(failed.items()),
    )


def check_tables(specs: Mapping[str, InputSpec], tables: Collection[str]) -> None:
    """A one-line ConfigError for the first input of ``specs`` that is neither a feature extractor nor
    one of ``tables`` (the names of the tables given, e.g. ``"openface_au_means"``): a command checks it
    before it reads or extracts any data."""
    for name, spec in specs.items():
        if spec.feature not in tables and spec.feature not in list_extractors():
            raise ConfigError(
                f"input {name!r} needs {spec.feature!r}, which is no feature extractor: it must be given as a "
                f"table (e.g. --visual-table CSV); tables given: {sorted(tables) or 'none'}"
            )


def check_some_input(specs: Mapping[str, InputSpec], tables: Collection[str]) -> None:
    """Before any data is read: :func:`check_tables` of the inputs of ``specs`` that are not optional
    (a late-fusion model's optional inputs may be left out), and a one-line ConfigError when every
    input is optional and reads a table not in ``tables``: nothing would be left to run the model on
    (:func:`~avemo.training.scoring.scorable_inputs` would refuse it once the data is read)."""
    check_tables({name: spec for name, spec in specs.items() if not spec.optional}, tables)
    usable = [s for s in specs.values() if s.feature in tables or s.feature in list_extractors()]
    if specs and not usable:
        missing = sorted({s.feature for s in specs.values()})
        raise ConfigError(f"every input of the model reads a table that was not given ({', '.join(missing)}; "
                          f"tables given: {', '.join(sorted(tables)) or 'none'}): give it (e.g. --visual-table CSV)")


def _from_table(takes: Sequence[Take], spec: InputSpec, table: Any, out: dict[str, np.ndarray],
                failed: dict[str, str]) -> None:
    """Each take's row of ``table`` (looked up by the take's file of the input's modality)."""
    for take in takes:
        clip = take.clip_for(spec.modality) or next(iter(take))
        row = table.row(clip)
        if row is None:
            failed.setdefault(take.key, f"{spec.feature} has no row for take {take.key}")
        else:
            out[take.key] = np.asarray(row, dtype=np.float32)


def _from_text(takes: Sequence[Take], spec: InputSpec, out: dict[str, np.ndarray], failed: dict[str, str], *,
               cache: FeatureCache, progress: Callable[[int, int], None]) -> None:
    """Each take's features of a text extractor, from its clip's text (``"Speaker: text"`` with the
    input's ``speaker_prefix``; through the cache, keyed by the text read); a take without text, or
    whose text fails (empty), is listed in ``failed`` (one whose files speech recognition found no
    speech in says so: :mod:`avemo.training.transcripts`)."""
    from avemo.datasets.text import speaker_prefixed
    from avemo.extraction import ExtractorSpec
    from avemo.extraction.text import text_extractor, text_features
    from avemo.training.transcripts import transcript_source

    extractor = text_extractor(ExtractorSpec.of(spec.feature, **dict(spec.config)))
    texts = {}
    for take in takes:
        clip = take.clip_for("text")
        if clip is None or not clip.text:
            why = ": speech recognition found no speech in it" if transcript_source(take) else ""
            failed.setdefault(take.key, f"take {take.key} has no text{why}")
        else:
            texts[take.key] = speaker_prefixed(clip.text, clip.speaker) if spec.speaker_prefix else clip.text
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        progress(done[0], len(texts))

    results = text_features(list(texts.values()), extractor, cache, progress=tick)
    for key, feats in zip(texts, results, strict=True):
        if isinstance(feats, AvemoError):
            failed.setdefault(key, f"{spec.feature}: {feats.reason}")
        else:
            out[key] = feats["x"]


def _from_extractor(takes: Sequence[Take], spec: InputSpec, out: dict[str, np.ndarray], failed: dict[str, str], *,
                    perturb: Mapping[str, Any] | None, progress: Callable[[int, int], None], cache: FeatureCache,
                    workers: int, executor: str, address: str | None) -> list[str]:
    """Each take's features of the input's extractor: extracted into the cache on the executor, then
    read back; a take whose file fails is listed in ``failed`` with the reason. Returns what the decoder
    said of the files (a truncated WAV: now, or when the features read from the cache were made)."""
    from avemo.extraction import ExtractorSpec, extract_file, run_extraction
    from avemo.extraction.core import decoder_warnings, not_yet_warned

    is_audio = extractor_class(spec.feature).modality == "audio"
    es = ExtractorSpec.of(spec.feature, perturb=dict(perturb) if perturb and is_audio else None, **dict(spec.config))
    extractor = es.build()
    sources = {}
    for take in takes:
        clip = take.clip_for(spec.modality)
        if clip is None:
            failed.setdefault(take.key, f"take {take.key} has no {spec.modality} file")
        else:
            sources[take.key] = clip.path
    paths = sorted(set(map(str, sources.values())))
    done = iter(range(1, len(paths) + 1))
    report = run_extraction(paths, [es], cache=cache, workers=workers, executor=executor, address=address,
                            progress=lambda _outcome: progress(next(done), len(paths)))
    errors = {o.path: next(iter(o.errors.values())) for o in report.failed}
    for key, path in sources.items():
        if str(path) in errors:
            failed.setdefault(key, f"{path}: {spec.feature}: {errors[str(path)]}")
            continue
        outcome, feats = extract_file(path, [extractor], cache, keep=True)
        if outcome.errors:
            failed.setdefault(key, f"{path}: {spec.feature}: {outcome.errors[extractor.name]}")
        else:
            out[key] = feats[extractor.name]["x"]
    return decoder_warnings(not_yet_warned(report.outcomes))  # each file once in a run: each_file_warned_once


def concat(parts: Sequence[Gathered]) -> Gathered:
    """Several Gathered sets as one (e.g. the originals and their perturbed copies)."""
    names = list(parts[0].inputs)
    return Gathered(
        takes=[t for p in parts for t in p.takes],
        inputs={n: [a for p in parts for a in p.inputs[n]] for n in names},
        failed=[f for p in parts for f in p.failed],
    )


def previous_utterances(takes: Sequence[Take]) -> list[list[int]]:
    """For each take, the indices (into ``takes``) of the earlier utterances of its dialogue, oldest
    first: the history from which a model takes its window of ``H`` (paper 002, Gao & Guo,
    "Multimodal emotion recognition based on fusion with residual connection", §3.1 eq. 1).

    Utterances are ordered by ``turn``; a dialogue with missing turns keeps its order (the gap is
    not filled). Only ``takes`` count: the utterances of one split get their context from that split.
    A take listed again (the perturbed copies of a training set, :func:`concat`) starts another
    copy of its dialogue: the k-th occurrence of a take gets its context from the k-th copies.
    """
    dialogues: dict[tuple[str, int], list[tuple[int, int]]] = {}
    seen: dict[str, int] = {}
    for i, take in enumerate(takes):
        dialogue, turn = dialogue_turn(take)
        copy = seen[take.key] = seen.get(take.key, -1) + 1
        dialogues.setdefault((dialogue, copy), []).append((turn, i))
    out: list[list[int]] = [[] for _ in takes]
    for items in dialogues.values():
        items.sort()
        for k, (_, i) in enumerate(items):
            out[i] = [j for _, j in items[:k]]
    return out


#: what a model with dialogue context needs, said when a take has no dialogue and turn
NEEDS_DIALOGUES = ("a model with dialogue context needs a conversational dataset (meld, iemocap), or a model "
                   "without it (gao_dialogue: \"context\": 0)")


def dialogue_turn(take: Take) -> tuple[str, int]:
    """The take's dialogue and turn (from its clips); a DatasetError if the dataset has none."""
    for clip in take:
        dialogue, turn = getattr(clip, "dialogue", None), getattr(clip, "turn", None)
        if dialogue is not None and turn is not None:
            return str(dialogue), int(turn)
    raise DatasetError(f"take {take.key} has no dialogue and turn: {NEEDS_DIALOGUES}")


def refuse_without_dialogues(clips: Sequence[Clip], context: int | None, root: str | Path) -> None:
    """A one-line DatasetError, for a model with dialogue context ``context`` (its H), when a labelled clip
    of a corpus (``root``) has no dialogue and turn: before its transcription and feature extraction,
    which the same refusal (:func:`dialogue_turn`) came after."""
    if not context:
        return
    for clip in clips:
        if clip.emotion is not None and (clip.dialogue is None or clip.turn is None):
            raise DatasetError(f"{Path(clip.path).name} has no dialogue and turn (the model reads the {context} "
                               f"previous utterance(s) of its dialogue): {NEEDS_DIALOGUES}", root)


def check_labels(data: Gathered, label_set: LabelSet) -> None:
    """Every take's emotion must be in ``label_set`` (a clear error otherwise)."""
    foreign = sorted({t.emotion for t in data.takes if t.emotion not in label_set}, key=str)
    if foreign:
        raise DatasetError(f"emotions {', '.join(map(str, foreign))} are not in label set {label_set.name} ({', '.join(label_set.emotions)})")
