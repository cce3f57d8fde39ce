"""What computes a prediction behind :class:`~avemo.inference.predictor.Predictor`: a :class:`Backend`.

A backend is given the file, its probed streams, the modalities it may use (:class:`Streams`: the
ones asked for and present, and why the others are not), the timeline grid and a progress callback,
and returns a :class:`BackendResult`: clip probabilities, the per-window scores and the final
status of every modality. It never changes what it is given. Two backends exist:

* :class:`ExpertsBackend`, the bundled model: the audio expert and the video expert run at the same
  time in two threads, each streaming its part of the file, and a product of experts fuses them,
  clip-level and per window; the audio term of a window is left out when the window holds too little
  speech, and a track without speech is not used (:mod:`avemo.inference.abstention`); with a crowd
  detector, the same holds for windows (and a track) where several people talk at once;
* :class:`ZooBackend`, a checkpoint of the model zoo (``avemo train``): its own extractors on the
  clip and on each window, normalised and batched exactly as in training, behind the same speech
  gate as the bundle (no audio vote without speech, an uncertain answer from too little of it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avemo.errors import AvemoError, FeatureError, MissingStreamError
from avemo.features.audio.vad import SAMPLE_RATE as VAD_RATE
from avemo.features.audio.vad import SpeechActivity, VoiceActivityDetector
from avemo.inference.abstention import AbstentionConfig, speech_gate
from avemo.inference.result import NOT_REQUESTED, ModalityStatus
from avemo.inference.windows import WindowGrid
from avemo.media.decode import TRUNCATED, joined_length
from avemo.media.probe import SILENT_PEAK
from avemo.modality import MEDIA_MODALITIES

#: a file at least this long (seconds) whose face is one still picture has no video vote: a cover
#: image held over a podcast's sound (:mod:`avemo.features.face.still`: the video expert's ``still``, the
#: face extractors' of a zoo checkpoint), for this reason
STILL_SECONDS = 2.0
STILL = "a still picture: the face shows the same image throughout (a cover image?), no facial expression to follow"

#: progress(done_seconds, total_seconds)
Progress = Callable[[float, float], None]


@dataclass(frozen=True)
class Streams:
    """The modalities a prediction may use (asked for and present in the file), and for the
    others why not (``"not requested"``, ``"the file has no audio track"``...)."""

    use: Mapping[str, bool]
    reasons: Mapping[str, str]


@dataclass(frozen=True)
class WindowScores:
    """The timeline as a backend computed it, one row per window of the grid.

    ``probabilities`` rows are NaN for windows without data; ``present[m]`` says whether modality ``m``
    contributed to each window; ``calm_decided`` whether the window's evidence can tell RAVDESS
    ``calm`` from ``neutral`` (see :func:`~avemo.inference.fusion.decide`); ``speech`` the share of each
    window that is speech (NaN where no VAD listened to it). A window with neither probabilities nor
    a speech share is left out of the timeline; one with a speech share only is shown without emotion.
    ``crowd``: the crowd detector's score of each window (:mod:`avemo.inference.crowd`);
    ``crowd_gated``: the windows whose voice the crowd gate took out: their score is at or above the
    threshold, or the gate switched off the audio of the whole clip and they had a vote (enough speech).
    """

    bounds: np.ndarray  # (K, 2) start, end in seconds
    probabilities: np.ndarray  # (K, C)
    present: Mapping[str, np.ndarray]  # modality -> (K,) bool
    calm_decided: np.ndarray  # (K,) bool
    speech: np.ndarray | None = None  # (K,) share of speech, NaN where unknown; None: no VAD ran
    crowd: np.ndarray | None = None  # (K,) crowd score, NaN where unknown; None: no crowd detector
    crowd_gated: np.ndarray | None = None  # (K,) bool, the crowd gate took the voice out; None: no detector


@dataclass(frozen=True)
class BackendResult:
    """What a backend computed for one file, before it becomes a Prediction."""

    duration: float
    probabilities: np.ndarray | None  # (C,) of the clip; None when no expert had anything (no speech, no face)
    calm_decided: bool
    windows: WindowScores
    modalities: Mapping[str, ModalityStatus]
    face_coverage: float | None
    warnings: tuple[str, ...] = ()  # what the decoders could not read (a damaged or truncated file)
    speech: float | None = None  # share of the clip that is speech (None: no VAD ran)
    # the audio voted on less than the bundle's min_speech seconds of speech: every answer with its vote
    # is flagged uncertain (avemo.inference.abstention)
    short_speech: bool = False
    # the fusion's clip inputs, kept for speaker-level normalisation (avemo.inference.speakers): the audio
    # clip embedding the head read (None: audio not used, or not an embedding model) and the video
    # expert's pooled clip probabilities (None: video not used)
    audio_embedding: np.ndarray | None = None
    video_clip: np.ndarray | None = None


class Backend(Protocol):
    """Computes a :class:`BackendResult` for a file (see the module docstring)."""

    labels: tuple[str, ...]
    modalities: tuple[str, ...]  # the media modalities the model reads (its inputs), in canonical order

    def run(self, path: Path, info: Any, streams: Streams, grid: WindowGrid,
            progress: Progress | None) -> BackendResult:
        ...


# ----------------------------------------------------------------------------- the bundled model
class ExpertsBackend:
    """The default model: audio expert + video expert + product-of-experts fusion."""

    def __init__(self, audio, video, fusion, labels: tuple[str, ...], speech_share: float = 0.5,
                 min_speech: float = 0.0):
        self.audio = audio
        self.video = video
        self.fusion = fusion  # an Engine over ProductOfExperts
        self.labels = labels
        self.modalities = MEDIA_MODALITIES  # an audio expert and a video expert
        self.speech_share = speech_share  # the least speech share of a window the audio expert votes on
        self.min_speech = min_speech  # the least seconds of speech in a file for its audio answers to be trusted

    def run(self, path: Path, info: Any, streams: Streams, grid: WindowGrid,
            progress: Progress | None) -> BackendResult:
        total = float(info.duration or 0.0)
        reasons = dict(streams.reasons)
        warnings: list[str] = []
        audio_out, video_out, speech = self._analyse(path, streams, grid, total, progress, reasons, warnings.append)
        # a face was read, and _analyse found no reason to leave the video out (a still picture)
        used_video = video_out is not None and len(video_out.times) > 0 and "video" not in reasons
        if used_video and video_out.most_faces > 1:  # a video call, an audience: which face was read is said
            warnings.append(f"up to {video_out.most_faces} faces in a frame: the video's emotion is that of one face, "
                            "the largest where it was first found (taken for the speaker's)")
        if used_video and video_out.distinct < video_out.n_frames:  # a video slower than the expert's rate
            warnings.append(f"video: only {video_out.distinct} distinct frames for the {video_out.n_frames} the video "
                            f"expert reads ({self.video.config.fps:g} per second): frames were repeated to fill them")
        decoded = [speech.duration] if speech is not None else [audio_out.duration] if audio_out is not None else []
        if video_out is not None:
            decoded.append(video_out.end)
        duration = clip_length(info, decoded, warnings)
        bounds = grid.bounds(duration)
        n, c = len(bounds), len(self.labels)
        audio_windows = np.full((n, c), np.nan, dtype=np.float32)
        shares = np.full(n, np.nan) if speech is None else speech.window_fractions(bounds)
        detector = getattr(self.audio, "crowd", None)
        crowd = None if detector is None else np.full(n, np.nan)
        gated = None if detector is None else np.zeros(n, bool)
        if audio_out is not None:
            keep = audio_out.window_index < n
            audio_windows[audio_out.window_index[keep]] = audio_out.window_logits[keep]
            if speech is not None:
                audio_windows[~speech_gate(shares, self.speech_share)] = np.nan  # no speech: no audio term
            if crowd is not None and audio_out.window_crowd is not None:
                crowd[audio_out.window_index[keep]] = audio_out.window_crowd[keep]
                reason, gated = _crowd_gate(audio_windows, crowd, audio_out.clip_crowd, detector.threshold)
                if reason is not None:  # a crowd, not a speaker: the audio modality is not used
                    reasons["audio"] = reason
                    warnings.append(f"audio not used: {reason}")
                    audio_out = None
        short = None if audio_out is None else _short_speech(speech, self.min_speech)
        if short is not None:  # the audio votes, but every answer it is part of is flagged uncertain
            warnings.append(short)
        video_windows = self.video.pooled(video_out, bounds) if used_video else None
        rows = fuse(self.fusion, audio_windows if audio_out is not None else None, video_windows, n, c)
        # the clip: both experts, then each one alone (its calibrated distribution, reported per modality)
        clip_audio = None if audio_out is None else clip_audio_logits(audio_out, audio_windows)
        clip_video = self.video.pooled(video_out)[None] if used_video else None
        clip = fuse(self.fusion, clip_audio, clip_video, 1, c)[0] if audio_out is not None or used_video else None
        alone = {"audio": fuse(self.fusion, clip_audio, None, 1, c)[0] if clip_audio is not None else None,
                 "video": fuse(self.fusion, None, clip_video, 1, c)[0] if clip_video is not None else None}
        has_audio = ~np.isnan(audio_windows).any(axis=1) if audio_out is not None else np.zeros(n, bool)
        has_video = ~np.isnan(video_windows).any(axis=1) if video_windows is not None else np.zeros(n, bool)
        modalities = {
            m: ModalityStatus(
                used=alone[m] is not None,
                reason=None if alone[m] is not None else reasons.get(m),
                probabilities=None if alone[m] is None else labelled(alone[m], self.labels),
            )
            for m in MEDIA_MODALITIES
        }
        return BackendResult(
            duration=duration, probabilities=clip, calm_decided=audio_out is not None,
            windows=WindowScores(bounds, rows, {"audio": has_audio, "video": has_video}, calm_decided=has_audio,
                                 speech=None if speech is None else shares, crowd=crowd, crowd_gated=gated),
            modalities=modalities, face_coverage=video_out.coverage if video_out is not None else None,
            warnings=tuple(warnings), speech=None if speech is None else _share(speech),
            short_speech=short is not None, audio_embedding=None if audio_out is None else audio_out.clip_embedding,
            video_clip=None if clip_video is None else clip_video[0],
        )

    def _analyse(self, path: Path, streams: Streams, grid: WindowGrid, total: float, progress: Progress | None,
                 reasons: dict[str, str], warn: Callable[[str], None]):
        """Both experts on the file at the same time; ``(audio output, video output, speech activity)``,
        None for a modality that is not used, failed, is silent, holds no speech or shows no face (its
        reason in ``reasons``; the speech activity is kept when the audio was listened to); ``warn``
        receives what a damaged file made the decoders skip. Only a file whose every stream failed
        raises: one that was analysed and holds no speech and no face gives a result without emotion."""
        attempted = [m for m in MEDIA_MODALITIES if streams.use[m]]
        tracker = _Combined(progress, total, attempted)
        outputs, errors = self._run_experts(path, streams, grid, tracker, warn)
        audio_out, video_out = outputs.get("audio"), outputs.get("video")
        reasons.update({name: exc.reason for name, exc in errors.items()})
        speech = None if audio_out is None else audio_out.speech
        silence = None if audio_out is None else _no_speech(audio_out.peak, speech)
        if silence is not None:
            reasons["audio"] = silence
            audio_out = None
        if video_out is not None and len(video_out.times) == 0:
            reasons["video"] = (
                f"no face detected in any of the {video_out.n_frames} analysed frames"
                if video_out.n_frames else "the video stream holds no frames"
            )
        elif video_out is not None and video_out.still and total >= STILL_SECONDS:
            reasons["video"] = STILL
        if errors and all(m in errors for m in attempted):
            raise errors[attempted[0]]  # every stream failed to decode: that is the file's problem
        return audio_out, video_out, speech

    def _run_experts(self, path: Path, streams: Streams, grid: WindowGrid, tracker: _Combined, warn):
        """The audio expert in a thread, the video one here: (outputs, the file's errors) by modality.
        On Ctrl-C (or an error that is not the file's), the audio thread is stopped at its next
        progress report and waited for before that propagates."""
        outputs: dict[str, Any] = {}
        errors: dict[str, AvemoError] = {}
        thread = None
        try:
            if streams.use["audio"]:
                thread = _ExpertThread(lambda: self.audio.analyse(path, grid, tracker.for_stream("audio"), warn))
            if streams.use["video"]:
                try:
                    outputs["video"] = self.video.analyse(path, tracker.for_stream("video"), warn)
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
        return outputs, errors


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


# ----------------------------------------------------------------------------- a zoo checkpoint
class ZooBackend:
    """A zoo checkpoint (``avemo train``): its own extractors on the clip and on each window.

    The audio track is decoded once per sample rate its audio extractors ask for (usually one), and
    every window's audio features are computed from the same decoded samples.

    With ``abstention`` (what :meth:`Predictor.from_checkpoint
    <avemo.inference.predictor.Predictor.from_checkpoint>` gives: the defaults, a checkpoint has no
    calibrated ``tau`` of its own), the bundle's speech gate (:mod:`avemo.inference.abstention`) holds
    for a model with an audio input: the VAD runs once over the decoded track (at 16 kHz, resampled
    from another rate when no input decodes at that one); a silent track or one without speech is not
    used (the bundle's reasons, "no speech"), a window whose speech share is below ``speech_share`` gets
    no audio input (nor an answer, when the model needs audio), and every answer with an audio vote
    from a file with less than ``min_speech`` seconds of speech is flagged uncertain. Without speech, a
    model whose audio input is optional (late fusion) answers from the face alone, as the bundle does;
    a joint model, which needs the voice (its audio input is required), gives no emotion, also where it
    sees a face: its one answer is a function of both inputs together, and fed the silence it would read
    it as a voice, which is what the gate exists to prevent (it has no face-only answer to fall back on).
    ``abstention`` None: no gate (every window's audio is read, whatever it holds).
    """

    def __init__(self, runner, labels: tuple[str, ...], abstention: AbstentionConfig | None = None):
        from avemo.features.base import get_extractor

        self.runner = runner
        self.labels = labels
        self.specs = dict(runner.specs)
        self.by_modality = {m: [n for n, s in self.specs.items() if s.modality == m] for m in MEDIA_MODALITIES}
        self.modalities = tuple(m for m in MEDIA_MODALITIES if self.by_modality[m])  # its inputs (egemaps_*: audio)
        self.extractors = {n: get_extractor(s.feature, **dict(s.config)) for n, s in self.specs.items()}
        self.abstention = abstention
        self.vad = None if abstention is None or not self.by_modality["audio"] else VoiceActivityDetector(abstention.vad)

    def _required(self, modality: str) -> bool:
        return any(not self.specs[n].optional for n in self.by_modality[modality])

    def _complete(self, arrays: Mapping[str, Any]) -> bool:
        """Whether the model can run on ``arrays``: some input, and every required one."""
        return bool(arrays) and all(n in arrays or s.optional for n, s in self.specs.items())

    def _usable(self, path: Path, streams: Streams) -> tuple[dict[str, bool], dict[str, str]]:
        """Which modalities the model can use on this file: its inputs among the streams given."""
        use, reasons = dict(streams.use), dict(streams.reasons)
        model = self.runner.ckpt.model.name
        given = [m for m in MEDIA_MODALITIES if use[m]]
        for modality in MEDIA_MODALITIES:
            if not self.by_modality[modality]:
                # the file has the stream: the model's lack says why, also where the request left it out
                # (a server offers only what the model reads: "not requested" blamed the user)
                if use[modality] or reasons.get(modality) == NOT_REQUESTED:
                    reasons[modality] = f"the model ({model}) has no {modality} input"
                use[modality] = False
            elif not use[modality] and self._required(modality):
                raise MissingStreamError(f"the model {model} needs {modality}, but "
                                         f"{reasons.get(modality, 'it is not used')}", path, stream=modality)
        if not any(use.values()):
            takes = ", ".join(dict.fromkeys(s.modality for s in self.specs.values()))
            raise FeatureError(f"the model ({model}) takes {takes}, which this file cannot give (it gives "
                               f"{', '.join(given) or 'no usable stream'})", path)
        return use, reasons

    def _listen(self, signals: Mapping[int, np.ndarray]) -> tuple[SpeechActivity | None, str | None]:
        """The VAD on the decoded track: (its speech activity, why the track gives no audio vote at all or
        None); (None, None) without a gate."""
        if self.vad is None:
            return None, None
        sr = VAD_RATE if VAD_RATE in signals else max(signals)
        y = signals[sr]
        speech = self.vad.detect(y, sr)
        return speech, _no_speech(float(np.max(np.abs(y))) if len(y) else 0.0, speech)

    def _audio_features(self, signals: Mapping[int, np.ndarray], start: float | None = None,
                        end: float | None = None) -> dict[str, list[np.ndarray]]:
        """The audio inputs of the clip, or of the window ``[start, end)`` seconds."""
        out = {}
        for name in self.by_modality["audio"]:
            extractor = self.extractors[name]
            sr = extractor.sample_rate
            y = signals[sr] if start is None else signals[sr][int(round(start * sr)) : int(round(end * sr))]
            out[name] = [extractor.from_signal(y, sr)["x"]]
        return out

    def _video_features(self, path: Path, start: float | None, duration: float | None,
                        repeats: list[tuple[str, int, int]] | None = None, said: list[str] | None = None):
        """The video inputs of the clip, or of the window from ``start`` for ``duration`` seconds, the
        clip's face coverage, and whether every input saw one still picture where the face is (a cover
        image: :mod:`avemo.features.face.still`; False for an extractor that does not say); an input
        whose frames were repeated (a window with fewer frames than the model reads) is appended to
        ``repeats`` as ``(extractor name, distinct frames, frames read)``. What the decoder says of a
        damaged file (:mod:`avemo.media.decode`) goes into ``said`` (None: dropped, as for a window,
        whose damage the clip's decode of the whole file has told already); it was logged, once per
        extractor and window, and missing from the prediction's warnings."""
        from avemo import config as cfg
        from avemo.media.decode import collecting_warnings

        out, coverage, still = {}, None, True
        for name in self.by_modality["video"]:
            extractor = self.extractors[name]
            if start is not None:
                extractor = type(extractor)(cfg.replace(extractor.config, start=start, duration=duration))
            lines: list[str] = []  # filled when the block ends, also on an error
            try:
                with collecting_warnings(path) as lines:
                    feats = extractor.extract(path)  # each run starts a face detector, which keeps its notices quiet
            finally:
                if said is not None:
                    said += lines
            out[name] = [feats["x"]]
            if "coverage" in feats:
                coverage = float(feats["coverage"])
            still = still and bool(feats.get("still", False))
            sampled = len(feats["times"]) if "times" in feats else 0
            if repeats is not None and "distinct" in feats and int(feats["distinct"]) < sampled:
                repeats.append((extractor.name, int(feats["distinct"]), sampled))
        return out, coverage, still

    def run(self, path: Path, info: Any, streams: Streams, grid: WindowGrid,
            progress: Progress | None) -> BackendResult:
        from avemo.media import load_audio

        use, reasons = self._usable(path, streams)
        total = float(info.duration or 0.0)
        warnings: list[str] = []
        signals: dict[int, np.ndarray] = {}
        clip_arrays: dict[str, list] = {}
        coverage, speech = None, None
        if use["audio"]:
            rates = sorted({self.extractors[n].sample_rate for n in self.by_modality["audio"]})
            signals = {sr: load_audio(path, sr=sr, warn=warnings.append) for sr in rates}
            total = clip_length(info, [len(signals[rates[0]]) / rates[0]], warnings)
            speech, silence = self._listen(signals)
            if silence is None:
                clip_arrays.update(self._audio_features(signals))
            else:  # no speech: no audio vote, and no answer at all from a model that needs the voice
                use["audio"], reasons["audio"] = False, silence
                if use["video"] and self._required("audio"):
                    use["video"] = False
                    reasons["video"] = (f"the model ({self.runner.ckpt.model.name}) reads the face together with "
                                        "the voice, and the audio holds no speech")
        repeats: dict[str, list] = {"clip": [], "windows": []}  # inputs whose frames were repeated
        if use["video"]:
            try:
                span = (None, None) if total == float(info.duration or 0.0) else (0.0, total)  # joined: all
                feats, coverage, still = self._video_features(path, *span, repeats["clip"], warnings)
                if still and total >= STILL_SECONDS:  # as the bundle: no vote for a cover image's face
                    raise FeatureError(STILL, path)
                clip_arrays.update(feats)
            except FeatureError as exc:
                if self._required("video") or not signals:  # the audio was analysed: a result, with or without emotion
                    raise
                reasons["video"] = exc.reason
                use["video"] = False
        clip = softmax(self.runner.logits(clip_arrays)[0]) if self._complete(clip_arrays) else None
        bounds = grid.bounds(total)
        shares = None if speech is None else speech.window_fractions(bounds)
        windows = self._windows(path, bounds, use, signals, shares, total, progress, repeats["windows"])
        warnings += repeated_frames(repeats["clip"], repeats["windows"], len(bounds))
        if clip is not None and use["audio"]:  # a long file: its windows with speech (as the bundle's audio)
            mean = voiced_mean(windows.probabilities, windows.present["audio"], total)
            clip = clip if mean is None else mean
        short = _short_speech(speech, self.abstention.min_speech) if use["audio"] and speech is not None else None
        if short is not None:
            warnings.append(short)
        modalities = {m: ModalityStatus(used=use[m], reason=None if use[m] else reasons.get(m)) for m in MEDIA_MODALITIES}
        return BackendResult(duration=total, probabilities=clip, calm_decided=True, windows=windows,
                             modalities=modalities, face_coverage=coverage, warnings=tuple(dict.fromkeys(warnings)),
                             speech=None if speech is None else _share(speech), short_speech=short is not None)

    def _windows(self, path: Path, bounds: np.ndarray, use: Mapping[str, bool], signals: Mapping[int, np.ndarray],
                 shares: np.ndarray | None, total: float, progress: Progress | None,
                 repeats: list | None = None) -> WindowScores:
        """The model on each window; a window missing a required input is left out. ``shares``: each
        window's speech share (None: no gate); below ``speech_share`` the window has no audio input.
        ``repeats``: see :meth:`_video_features`, for every window."""
        n, c = len(bounds), len(self.labels)
        probs = np.full((n, c), np.nan, dtype=np.float32)
        present = {"audio": np.zeros(n, bool), "video": np.zeros(n, bool)}
        voiced = np.ones(n, bool) if shares is None else speech_gate(shares, self.abstention.speech_share)
        for k, (start, end) in enumerate(bounds):
            arrays: dict[str, list] = {}
            wanted = [m for m in MEDIA_MODALITIES if use[m] and (m != "audio" or voiced[k])]
            if use["audio"] and not voiced[k] and self._required("audio"):
                wanted = []  # too little speech for the voice the model needs: no answer in this window
            for modality in wanted:
                try:
                    if modality == "audio":
                        arrays.update(self._audio_features(signals, float(start), float(end)))
                    else:
                        arrays.update(self._video_features(path, float(start), float(end - start), repeats)[0])
                    present[modality][k] = True
                except FeatureError:
                    present[modality][k] = False
            if self._complete(arrays):
                probs[k] = softmax(self.runner.logits(arrays)[0])
            else:
                present["audio"][k] = present["video"][k] = False
            if progress is not None:
                progress(float(end), total)
        return WindowScores(bounds, probs, present, calm_decided=np.ones(n, bool), speech=shares)


# ----------------------------------------------------------------------------- helpers
def clip_length(info: Any, decoded: Sequence[float], warnings: Iterable[str]) -> float:
    """The clip's extent, for either backend: the container's duration (``info.duration``); the longest
    of the ``decoded`` streams' lengths (seconds) when it has none, when the file ends before the length
    its header declares (a :data:`~avemo.media.decode.TRUNCATED` warning), or when recordings joined in
    one MPEG-TS/FLV file make it another (:func:`avemo.media.decode.joined_length`)."""
    stated = float(info.duration or 0.0)
    if decoded and (any(w.startswith(TRUNCATED) for w in warnings)
                    or joined_length(info.container, stated, max(decoded))):
        return max(decoded)
    return stated if stated > 0 else max([stated, *decoded])


def repeated_frames(clip: list[tuple[str, int, int]], windows: list[tuple[str, int, int]], n_windows: int) -> list[str]:
    """The warnings that say where a frame model's input repeated frames (``(extractor, distinct, read)``
    each, as :meth:`ZooBackend._video_features` lists them): for the clip, and once for all windows.
    The frames are repeated to give the model the count it reads (its numbers are as they were); the
    user is told how many distinct frames it saw."""
    lines = [f"video: only {distinct} distinct frames for the {read} the model reads ({name}): frames were "
             "repeated to fill them" for name, distinct, read in clip]
    for name in dict.fromkeys(name for name, _, _ in windows):
        seen = [(distinct, read) for n, distinct, read in windows if n == name]
        least, most = min(d for d, _ in seen), max(d for d, _ in seen)
        span = str(least) if least == most else f"{least}-{most}"
        lines.append(f"video: in {len(seen)} of {n_windows} timeline windows only {span} distinct frames for the "
                     f"{max(r for _, r in seen)} the model reads ({name}): frames were repeated to fill them")
    return lines


def _crowd_gate(audio_windows: np.ndarray, crowd: np.ndarray, clip_crowd: float | None,
                threshold: float) -> tuple[str | None, np.ndarray]:
    """Remove the audio term of the windows whose crowd score is at least ``threshold`` (in place).
    Returns the reason not to use the audio at all when most of the speech windows are crowd windows
    (the clip's own score decides when no window holds enough speech), else None; and the windows
    whose voice the gate took out (``WindowScores.crowd_gated``): those at or above the threshold,
    and, when the audio is not used at all, every window that had a vote."""
    speaking = ~np.isnan(audio_windows).any(axis=1)
    above = np.nan_to_num(crowd, nan=-1.0) >= threshold
    crowded = speaking & above
    audio_windows[crowded] = np.nan
    clip = "" if clip_crowd is None else f"crowd score {clip_crowd:.2f} for the clip, "
    if speaking.any():
        if crowded.sum() * 2 <= speaking.sum():
            return None, above
        return (f"several people talk at once in most of the speech ({clip}{int(crowded.sum())} of "
                f"{int(speaking.sum())} speech windows at or above {threshold:g})"), above | speaking
    if clip_crowd is None or clip_crowd < threshold:
        return None, above
    return f"several people talk at once in most of the speech ({clip}threshold {threshold:g})", above


def _no_speech(peak: float, speech: SpeechActivity | None) -> str | None:
    """Why a track that was listened to gives no audio vote at all: it is silent (``peak`` below
    :data:`~avemo.media.probe.SILENT_PEAK`), or the VAD found no speech in it; None when it holds speech
    (or no VAD ran)."""
    if peak < SILENT_PEAK:
        return f"the audio track is silent (peak level {_dbfs(peak)}): no speech"
    if speech is not None and not speech.has_speech:
        return f"no speech detected in the {speech.duration:.1f} s of audio (voice activity detection)"
    return None


def voiced_mean(probabilities: np.ndarray, voiced: np.ndarray, duration: float) -> np.ndarray | None:
    """The clip's answer from its windows, for a file longer than one encoder pass (``PASS_SECONDS``):
    the mean of the ``probabilities`` rows of the windows with an audio vote (``voiced``); None for a
    shorter file (read whole, as the models were trained on clips of that length, the silence before and
    after a sentence included) or where no window has a vote. A longer file's whole-file features are
    mostly the silence, music or other talk between its utterances: a 30 s file with 4 s of disgust
    speech read "neutral" while every window with the speech read disgust (and a fixed-length
    sequence input keeps only the middle of a file)."""
    from avemo.inference.audio import PASS_SECONDS

    voiced = voiced & ~np.isnan(probabilities).any(axis=1)
    if duration <= PASS_SECONDS or not voiced.any():
        return None
    return probabilities[voiced].mean(axis=0)


def clip_audio_logits(audio_out, audio_windows: np.ndarray) -> np.ndarray:
    """The bundle's clip audio term, (1, C) logits: the head on the clip's embedding, or for a long file
    the log of :func:`voiced_mean` of its windows' audio probabilities (``audio_windows``: logits, NaN
    rows where the audio expert has no vote)."""
    mean = voiced_mean(softmax(audio_windows), np.ones(len(audio_windows), bool), audio_out.duration)
    return audio_out.clip_logits[None] if mean is None else np.log(np.maximum(mean, 1e-12))[None]


def _short_speech(speech: SpeechActivity | None, min_speech: float) -> str | None:
    """The warning of an audio vote from less than ``min_speech`` seconds of speech, whose answers are all
    flagged uncertain (``BackendResult.short_speech``); None with enough speech (or no VAD)."""
    if speech is None or speech.speech_seconds >= min_speech:
        return None
    return (f"too little speech: {speech.speech_seconds:.2f} s detected in the {speech.duration:.1f} s of audio, "
            f"under the {min_speech:g} s the voice needs to be trusted (voice activity detection): the answers "
            "with an audio vote are flagged uncertain")


def _share(speech) -> float:
    """The share of a whole track that is speech."""
    return speech.speech_seconds / speech.duration if speech.duration > 0 else 0.0


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def labelled(values: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """``{label: value}`` for a vector of per-class values."""
    return {e: float(v) for e, v in zip(labels, values, strict=True)}


def _dbfs(peak: float) -> str:
    return "-inf dBFS" if peak <= 0 else f"{20 * np.log10(peak):.0f} dBFS"


def fuse(engine, audio_logits, video_probs, n: int, c: int) -> np.ndarray:
    """The fusion ``engine`` on n rows of audio logits and video probabilities (either may be None:
    that expert is left out); rows without any expert are NaN."""
    from avemo.inference.fusion import fusion_inputs

    if n == 0:
        return np.zeros((0, c), dtype=np.float32)
    inputs = fusion_inputs(audio_logits, video_probs, n, c)
    out = engine(**inputs)["probabilities"]
    out[inputs["present"].sum(axis=1) == 0] = np.nan
    return out
