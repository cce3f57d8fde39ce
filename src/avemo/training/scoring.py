"""Score a trained checkpoint on the takes of any corpus: the library behind ``avemo evaluate``
and the cross-corpus benchmarks.

The checkpoint's classes and the corpus's labels meet over a
:class:`~avemo.datasets.labels.Comparison` (:func:`~avemo.datasets.labels.comparison_map`):
in-domain it is one to one; across corpora the probabilities of the model's classes are summed
per scored label (RAVDESS calm + neutral -> neutral), classes without a partner are dropped,
the arg max is taken over the scored labels, and clips whose label has no partner (EmoDB
boredom) are left out and counted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.cache.store import FeatureCache
from avemo.datasets.copies import recording_digests
from avemo.datasets.labels import Comparison, comparison_map
from avemo.datasets.pairing import Take
from avemo.errors import ConfigError, DatasetError
from avemo.metrics import (
    Metrics,
    ReliabilityBin,
    compute_metrics,
    expected_calibration_error,
    reliability_bins,
)
from avemo.models.batching import TensorData
from avemo.models.checkpoint import Checkpoint, check_compatible, load_checkpoint
from avemo.models.inputs import InputSpec
from avemo.models.normalization import Normalizer
from avemo.training.data import Gathered, check_tables, gather, previous_utterances
from avemo.training.experiment import DataBundle, refuse_cut_dialogues
from avemo.training.trainer import predict_proba

log = logging.getLogger(__name__)

#: equal-width confidence bins of the expected calibration error
CALIBRATION_BINS = 15


@dataclass
class Evaluation:
    """A checkpoint scored on a corpus over the labels both can express.

    ``probabilities`` are the model's, mapped to the scored labels (``comparison.labels``) and
    renormalised over them; ``y_true`` indexes the scored labels; ``takes`` names the rows.
    """

    metrics: Metrics
    comparison: Comparison
    probabilities: np.ndarray
    y_true: np.ndarray
    takes: list[str]
    left_out: dict[str, int] = field(default_factory=dict)  # corpus label without a partner -> clips
    skipped: list[dict[str, str]] = field(default_factory=list)  # unreadable files / takes, with the reason
    adapt: str | None = None  # the test-time adaptation of the inputs (Normalizer.transform), or None
    seen: dict[str, int] = field(default_factory=dict)  # scored takes the checkpoint trained / selected on
    inputs: list[str] = field(default_factory=list)  # the model's inputs the takes were scored with
    left_out_inputs: dict[str, str] = field(default_factory=dict)  # optional input the corpus cannot give -> why

    def inputs_note(self) -> str:
        """One line when the model was scored without some of its (optional) inputs, else ``""``."""
        return inputs_note(self.inputs, self.left_out_inputs)

    def seen_warning(self) -> str | None:
        """One line when some scored takes trained or selected the checkpoint (:func:`seen_in_training`)."""
        if not any(self.seen.values()):
            return None
        how = " and ".join(f"{n} {'trained' if part == 'train' else 'validated'}" for part, n in self.seen.items() if n)
        return (f"{sum(self.seen.values())} of the {self.metrics.n} scored takes are not held out: {how} this checkpoint "
                "(the same speakers, the same official split, or byte-identical files)")

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.probabilities, self.y_true, CALIBRATION_BINS)

    @property
    def reliability(self) -> list[ReliabilityBin]:
        return reliability_bins(self.probabilities, self.y_true, CALIBRATION_BINS)

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "accuracy": m.accuracy, "uar": m.uar, "macro_f1": m.macro_f1, "weighted_f1": m.weighted_f1, "n": m.n,
            "labels": m.labels, "confusion": m.confusion, "auc": m.auc,
            **self.comparison.to_dict(),
            "left_out": dict(self.left_out),
            "skipped": list(self.skipped),
            "ece": self.ece, "calibration_bins": CALIBRATION_BINS,
            "reliability": [b.to_dict() for b in self.reliability],
            "adapt": self.adapt,
            "seen": dict(self.seen),
            "inputs": list(self.inputs), "left_out_inputs": dict(self.left_out_inputs),
        }


def transcribes_like_training(ckpt: Checkpoint) -> bool:
    """Whether scoring ``ckpt`` should give the clips without a transcript one by speech recognition,
    as its training did: its model reads text and its run recorded ASR transcripts (``avemo train
    --transcribe``, or ``transcribe = true`` for one of its corpora: ``checkpoint.json``'s
    ``data.transcripts``). ``avemo evaluate`` follows it unless told ``--transcribe/--no-transcribe``."""
    from avemo.training.transcripts import SOURCE, reads_text

    record = (ckpt.meta.get("data") or {}).get("transcripts") or {}
    return reads_text(ckpt.inputs) and record.get("source") == SOURCE


def seen_in_training(meta: Mapping[str, Any], takes) -> dict[str, int]:
    """How many of ``takes`` the checkpoint of ``meta`` trained on (``"train"``) or chose its epoch,
    calibration... on (``"val"``), as its metadata records them: takes of its training or validation
    speakers in a corpus of the same dataset (a multi-corpus run's ids are qualified by corpus), or,
    for a run split by the corpus's official partition (MELD, whose characters recur in every
    partition), takes of the partitions it trained and selected on. A take whose file is byte-identical
    to one the run trained or validated on (``data.digests``: a RAVDESS recording copied into a labelled
    folder under another speaker's name) counts too, whatever its corpus or speaker. A labelled folder's
    speaker ids are its own (``01`` of two folders: two people), so where the checkpoint records digests
    a ``folder`` take counts by its files alone; a checkpoint saved before digests were recorded counts
    it by speaker id. Each take counts once, as trained if it is both (two folder corpora of one run
    whose ids coincide made a take trained and validated: "20 of the 10 scored takes")."""
    from avemo.datasets.folder import DATASET as FOLDER
    from avemo.training.experiment import _split_of

    data, split_info = meta.get("data") or {}, meta.get("split") or {}
    counts = {"train": 0, "val": 0}
    if split_info.get("split") == "official":
        parts = {split_info.get("train"): "train", split_info.get("val"): "val"}
        for t in takes:
            if t.dataset == data.get("dataset") and _split_of(t) in parts:
                counts[parts[_split_of(t)]] += 1
        return counts
    speakers = {p: set((data.get("speakers") or {}).get(p) or ()) for p in counts}
    digests = {p: set((data.get("digests") or {}).get(p) or ()) for p in counts}
    recorded = any(digests.values())
    corpora = data.get("corpora") or [{"name": None, "dataset": data.get("dataset")}]
    for t in takes:
        ids = set() if recorded and t.dataset == FOLDER else {
            t.speaker if c["name"] is None else f"{c['name']}:{t.speaker}" for c in corpora if c["dataset"] == t.dataset}
        files = recording_digests([t]) if recorded else set()
        part = next((p for p in counts if ids & speakers[p] or files & digests[p]), None)
        if part is not None:
            counts[part] += 1
    return counts


def evaluate_checkpoint(
    checkpoint: str | Path | Checkpoint,
    data: DataBundle,
    *,
    cache: FeatureCache,
    workers: int = 1,
    speaker_norm: bool | None = None,
    perturb: Mapping[str, Any] | None = None,
    adapt: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Evaluation:
    """Predict every take of ``data`` with ``checkpoint`` and score it over the labels both share.

    Features come through ``cache`` as in training; ``perturb`` (e.g. ``{"channel": "mp3_16k"}``)
    computes the audio inputs on a degraded signal (:func:`~avemo.training.data.gather`).
    ``adapt="mean"``: test-time mean adaptation, unsupervised (the scored takes' own mean replaces
    the training mean of each standardised input: :class:`~avemo.models.normalization.Normalizer`),
    for a corpus from another language or recording setup. ``progress(input_name, done, total)``: as
    the features are extracted (:func:`~avemo.training.data.gather`).
    Raises a one-line error when the label sets cannot be compared, the checkpoint's features
    differ from this avemo's, no take of ``data`` is usable, or ``adapt`` cannot apply (unknown,
    a model without standardised inputs, fewer than ``MIN_ADAPT_ITEMS`` takes).
    A late-fusion checkpoint whose *optional* inputs the corpus cannot give (the AU table of
    RAVDESS-AU for EmoDB) is scored on the others (:func:`scorable_inputs`: the JSON's ``inputs``
    and ``left_out_inputs``); a required one missing is refused in one line.
    The steps -- :func:`scorable_inputs`, :func:`scoring_set`, :func:`model_probabilities`,
    :func:`score` -- are the ones ``avemo benchmark --test-corpus`` scores its runs with.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    refuse_cut_dialogues(data, ckpt.model.dialogue_context)
    check_compatible(ckpt, tables=data.tables)
    check_tables({n: s for n, s in ckpt.inputs.items() if not s.optional}, data.tables)  # as `avemo evaluate` does
    specs, left_out_inputs, note = scorable_inputs(ckpt.inputs, data)
    if specs is None:
        raise DatasetError(note, data.root)
    comparison = comparison_map(ckpt.labels, data.labels)
    norm = ckpt.normalizer
    if speaker_norm is not None and speaker_norm != norm.speaker_norm:
        raise ConfigError("the checkpoint was trained "
                          f"{'with' if norm.speaker_norm else 'without'} speaker normalisation; evaluate it the same way")
    try:
        norm.check_adapt(adapt)  # before any feature is computed
    except ConfigError as exc:
        raise ConfigError(exc.reason, ckpt.path) from None
    scoring = scoring_set(comparison, specs, data, cache=cache, workers=workers, perturb=perturb, progress=progress)
    probs = model_probabilities(ckpt.model, norm, scoring, adapt=adapt)
    return score(scoring, probs, adapt=adapt, seen=seen_in_training(ckpt.meta, scoring.gathered.takes),
                 left_out_inputs=left_out_inputs)


@dataclass
class ScoringSet:
    """The takes of a corpus gathered for a model's inputs, labelled over a :class:`Comparison`.

    ``specs``: the inputs gathered (a model's optional inputs that the corpus cannot give may be
    left out: :func:`corpus_inputs`); ``y_true`` indexes ``comparison.labels``; ``left_out``:
    clips whose label has no partner; ``skipped``: unreadable files and takes missing an input."""

    comparison: Comparison
    specs: dict[str, InputSpec]
    gathered: Gathered
    y_true: np.ndarray
    left_out: dict[str, int]
    skipped: list[dict[str, str]]
    root: Path


def scored_takes(comparison: Comparison, data: DataBundle) -> tuple[list[Take], dict[str, int]]:
    """The takes of ``data`` whose label has a partner in ``comparison``, and the clips left out per
    label; a one-line :class:`DatasetError` when no take is left."""
    scored = [t for t in data.takes if comparison.data(t.emotion) is not None]
    left_out = Counter(t.emotion for t in data.takes if comparison.data(t.emotion) is None)
    if not scored:
        raise DatasetError(f"no clip has a label that {comparison.model.source.name} can be scored on "
                           f"({', '.join(f'{e}: {n}' for e, n in sorted(left_out.items()))} left out)", data.root)
    return scored, dict(sorted(left_out.items()))


def corpus_inputs(specs: Mapping[str, InputSpec], data: DataBundle) -> tuple[dict[str, InputSpec], dict[str, str]]:
    """The inputs of ``specs`` that ``data`` can give, and why each other cannot: a table input whose
    table was not given with the corpus (the AU means of RAVDESS-AU for EmoDB), or a modality that
    no take of the corpus has (face frames of an audio-only corpus)."""
    from avemo.features.base import list_extractors

    kept, missing = {}, {}
    for name, spec in specs.items():
        if spec.feature not in data.tables and spec.feature not in list_extractors():
            missing[name] = f"{name} reads the {spec.feature} table, which {data.dataset} was not given"
        elif spec.feature not in data.tables and not any(spec.modality in t for t in data.takes):
            which = "" if name == spec.modality else f" (input {name})"
            missing[name] = f"the {data.dataset} takes have no {spec.modality}{which}"
        else:
            kept[name] = spec
    return kept, missing


def scorable_inputs(specs: Mapping[str, InputSpec], data: DataBundle
                    ) -> tuple[dict[str, InputSpec] | None, dict[str, str], str]:
    """The inputs of ``specs`` a model is scored with on ``data``, those left out with the reason
    (:func:`corpus_inputs`), and a note: ``(None, left out, reason)`` when the corpus cannot give an
    input the model needs (the AU table of RAVDESS-AU, face frames of an audio-only corpus) or any
    input at all; a late-fusion model whose *optional* inputs it cannot give is scored on the others
    (its other experts alone, as ``avemo predict`` runs it on such clips), and the note says so.
    ``avemo evaluate`` and ``avemo benchmark --test-corpus`` both decide with it."""
    kept, missing = corpus_inputs(specs, data)
    required = [reason for name, reason in missing.items() if not specs[name].optional]
    if required or not kept:
        return None, missing, "; ".join(required or missing.values())
    return kept, missing, inputs_note(kept, missing)


def inputs_note(kept, missing: Mapping[str, str]) -> str:
    """``"scored without video, from audio alone: <why>"`` for the inputs ``kept`` and the ``missing``
    ones with their reasons; ``""`` when none is missing."""
    if not missing:
        return ""
    return f"scored without {', '.join(missing)}, from {', '.join(kept)} alone: " + "; ".join(missing.values())


def scoring_set(comparison: Comparison, specs: Mapping[str, InputSpec], data: DataBundle, *, cache: FeatureCache,
                workers: int = 1, perturb: Mapping[str, Any] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> ScoringSet:
    """Gather ``specs`` for the takes of ``data`` that ``comparison`` scores (one-line errors when
    none has a scored label, or none has every input); ``progress``: :func:`~avemo.training.data.gather`'s."""
    scored, left_out = scored_takes(comparison, data)
    skipped = [{"file": path, "reason": reason} for path, reason in data.skipped]
    gathered = gather(scored, specs, tables=data.tables, cache=cache, workers=workers, perturb=perturb,
                      progress=progress)
    skipped += [{"take": key, "reason": reason} for key, reason in gathered.failed]
    if len(gathered) == 0:
        reasons = "; ".join(r for _, r in gathered.failed[:3])
        raise DatasetError(f"no take has all the inputs the checkpoint needs ({reasons})", data.root)
    labels = comparison.labels
    y_true = np.array([labels.index(comparison.data(t.emotion)) for t in gathered.takes], dtype=np.int64)
    return ScoringSet(comparison, dict(specs), gathered, y_true, left_out, skipped, Path(data.root))


def model_probabilities(model, normalizer: Normalizer, scoring: ScoringSet, *, adapt: str | None = None) -> np.ndarray:
    """The probabilities of ``model``'s own classes for every take of ``scoring`` (its inputs
    standardised by ``normalizer``; inputs of the model that ``scoring`` lacks are left out, which a
    late-fusion model takes as a missing expert)."""
    # the model's own class indices only shape the tensors here; scoring uses y_true over the scored labels
    gathered, context = scoring.gathered, model.dialogue_context  # a dialogue model reads previous utterances too
    try:
        inputs = normalizer.subset(scoring.specs).transform(gathered, adapt=adapt)
    except DatasetError as exc:  # too few takes to adapt to
        raise DatasetError(exc.reason, scoring.root) from None
    d = TensorData(inputs, np.zeros(len(gathered), dtype=np.int64), scoring.specs, context=context,
                   previous=previous_utterances(gathered.takes) if context else None)
    t0 = time.perf_counter()
    probs = predict_proba(model, d)
    log.info("predicted %d takes in %.2f s", len(d), time.perf_counter() - t0)
    return probs


def score(scoring: ScoringSet, probabilities: np.ndarray, *, adapt: str | None = None,
          seen: dict[str, int] | None = None, left_out_inputs: Mapping[str, str] | None = None) -> Evaluation:
    """The :class:`Evaluation` of a model's class ``probabilities`` for the takes of ``scoring`` (e.g.
    the mean of a seed ensemble's): mapped to the scored labels, arg max over them."""
    labels, comparison = scoring.comparison.labels, scoring.comparison
    probs = comparison.probabilities(probabilities)
    return Evaluation(
        metrics=compute_metrics(scoring.y_true, probs, labels.emotions), comparison=comparison, probabilities=probs,
        y_true=scoring.y_true, takes=[t.key for t in scoring.gathered.takes], left_out=dict(scoring.left_out),
        skipped=list(scoring.skipped), adapt=adapt, seen=dict(seen or {}), inputs=sorted(scoring.specs),
        left_out_inputs=dict(left_out_inputs or {}),
    )
