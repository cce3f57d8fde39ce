"""Voice activity detection: where in a signal someone speaks, from a neural model that ships offline.

The model is Silero VAD v5 (Silero Team 2024, "Silero VAD: pre-trained enterprise-grade Voice
Activity Detector", github.com/snakers4/silero-vad; MIT licence), from the ``silero-vad`` PyPI
wheel, which carries the ONNX graphs inside it. It is run with onnxruntime only, never through
torch (the wheel's Python code imports torch, so only its data file is used): the batched
"sequence" export ``silero_vad_16k_sequence.onnx``, which scores a block of 32 ms frames in one
call and gives the same per-frame probabilities as the streaming ``silero_vad.onnx``.
It is an LSTM over learned spectral features, trained to tell speech from noise, music, tones
and silence: not an energy threshold. It was chosen over WebRTC VAD by measurement
(``benchmarks/vad_choice.py``, figures in ``docs/results/vad.md``).

From per-frame probabilities to segments, as Silero's ``get_speech_timestamps``: speech starts at
a frame with probability >= ``threshold`` and ends after ``min_silence`` seconds below
``neg_threshold`` (hysteresis); segments shorter than ``min_speech`` are dropped; each is
padded by ``pad`` seconds (overlaps merge). The threshold is 0.3, not Silero's 0.5: at 0.5 the
model misses 14 of the 1200 RAVDESS clips, all shouted (strong happy, angry, fearful), at 0.3 it
misses 8, and no generated non-speech signal (noise, hum, tones, clicks) has a frame above 0.18
(chosen on RAVDESS, the training corpus, and generated signals only; ``docs/results/vad.md``).

Memory: the LSTM state runs on over the signal, but after ``reset_after`` seconds (3 s) in which
no frame reached the threshold it is replaced by the state of the model started that long ago
(scored again from a zero state over those quiet seconds); checked every 32 frames (1 s), and only
while the state may remember a frame at ``HEARD_DBFS`` (-50 dBFS RMS) or probability ``HEARD`` (0.1)
or more: one that has seen none since it (re)started has heard quiet only, as a restarted one would
(a probability alone is not enough: the quiet tail of a shout, scored 0.01-0.07, deafened the state
as the shout did). Run on unchanged, a shout can keep the state in "no speech" through seconds of
silence: of two shouted RAVDESS takes of actor 06 joined by 1-2.5 s of digital silence, the second,
found on its own at 0.90, stayed below 0.3 after the first, and the 17 s file of three strong fearful
takes of actor 06 (``benchmarks/long_clip_passes.py``) had no speech at all. Shorter memories let a
restarted state score clicks higher (largest non-speech frame 0.22 at 1 s, 0.18 at 3 s as never
restarted). Restarted at every check while the quiet lasted, 10 minutes of -60 dBFS noise took 4.2 s
(1.1 s never restarted); now 1.2 s (1.6 s never restarted, same run, a loaded machine), as no frame
reaches either mark: ``benchmarks/vad_joined.py``, figures in ``docs/results/vad.md``.

Streaming: :meth:`VoiceActivityDetector.stream` takes blocks of any length (the predictor's
30 s blocks) and carries the LSTM state, the frame context, a partial frame and the last
``reset_after`` seconds of samples between them, so that the probabilities do not depend on how
the signal was cut. Otherwise only the per-frame probabilities (about 31 floats per second) are
kept, never the audio.

The ONNX session is loaded once per process, on first use, under a lock; onnxruntime runs
concurrent calls on one session safely, and every stream keeps its own state.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo import config as cfg
from avemo.errors import ConfigError, FeatureError

SAMPLE_RATE = 16000
FRAME = 512  # samples per model frame (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees
FRAME_SECONDS = FRAME / SAMPLE_RATE
MODEL_FILE = "silero_vad_16k_sequence.onnx"
_STEP = 32  # frames per ONNX call (1.024 s); the recurrent state may be restarted after each
#: a frame at this level (RMS, dBFS) or speech probability is something the state may remember: with
#: none since the state (re)started, it has seen quiet only, as a restart would: it is not restarted
HEARD_DBFS, HEARD = -50.0, 0.1
_HEARD_RMS = 10 ** (HEARD_DBFS / 20)

_SESSION = None
_SESSION_LOCK = threading.Lock()


@dataclass(frozen=True)
class VadConfig:
    """Thresholds of the speech/non-speech decision (times in seconds; Silero's defaults but the
    threshold, see the module doc); ``reset_after``: the model's memory after that many seconds
    without a frame at the threshold (None: it runs on over the whole signal; see the module doc)."""

    threshold: float = 0.3
    neg_threshold: float | None = None  # None: threshold - 0.15 (at least 0.01)
    min_speech: float = 0.25
    min_silence: float = 0.1
    pad: float = 0.03
    reset_after: float | None = 3.0  # None: the model's state runs on over the whole signal

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"vad config: threshold must be in (0, 1), got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 < self.neg_threshold <= self.threshold:
            raise ConfigError(f"vad config: neg_threshold must be in (0, threshold], got {self.neg_threshold}")
        if min(self.min_speech, self.min_silence, self.pad) < 0:
            raise ConfigError("vad config: min_speech, min_silence and pad must be >= 0")
        if self.reset_after is not None and not self.reset_after > 0:
            raise ConfigError(f"vad config: reset_after must be > 0 seconds or null, got {self.reset_after}")

    @property
    def exit_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


def model_path() -> Path:
    """The ONNX file inside the installed ``silero-vad`` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureError("voice activity detection needs the silero-vad package (pip install silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise FeatureError(f"the installed silero-vad package has no {MODEL_FILE}", path)
    return path


def load_session():
    """The process-wide onnxruntime session of the VAD model (loaded on first call, thread-safe)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # a small LSTM: threads cost more than they give
            options.inter_op_num_threads = 1
            _SESSION = ort.InferenceSession(str(model_path()), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        return _SESSION


@dataclass(frozen=True)
class SpeechActivity:
    """Where speech is in a signal: ``segments`` (start, end) in seconds, sorted and disjoint,
    over ``duration`` seconds; ``probabilities``: the model's speech probability per 32 ms frame."""

    segments: tuple[tuple[float, float], ...]
    duration: float
    probabilities: np.ndarray

    @property
    def has_speech(self) -> bool:
        return bool(self.segments)

    @property
    def speech_seconds(self) -> float:
        return float(sum(end - start for start, end in self.segments))

    def fraction(self, start: float = 0.0, end: float | None = None) -> float:
        """Share of ``[start, end)`` (seconds; ``end`` None: the end of the signal) covered by speech."""
        end = self.duration if end is None else end
        if end <= start:
            raise ConfigError(f"a window must end after it starts, got [{start}, {end})")
        return float(self.window_fractions(np.array([[start, end]]))[0])

    def window_fractions(self, bounds: np.ndarray) -> np.ndarray:
        """(K,) speech share of each window of ``bounds`` (K, 2) ``[start, end)`` seconds (e.g.
        ``WindowGrid.bounds``); a window of zero length has share 0."""
        bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
        covered = np.zeros(len(bounds))
        for a, b in self.segments:
            covered += np.clip(np.minimum(bounds[:, 1], b) - np.maximum(bounds[:, 0], a), 0.0, None)
        length = bounds[:, 1] - bounds[:, 0]
        return np.divide(covered, length, out=np.zeros(len(bounds)), where=length > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"segments": [[round(a, 3), round(b, 3)] for a, b in self.segments],
                "duration": round(self.duration, 3), "speech_seconds": round(self.speech_seconds, 3)}


def segments_from_probabilities(
    probs: np.ndarray, n_samples: int, config: VadConfig, frame: int = FRAME
) -> tuple[tuple[float, float], ...]:
    """Speech segments (seconds) from probabilities of consecutive ``frame``-sample frames at 16 kHz
    (see module doc for the rule)."""
    min_speech = config.min_speech * SAMPLE_RATE
    min_silence = config.min_silence * SAMPLE_RATE
    found: list[list[int]] = []
    start: int | None = None
    silent_since: int | None = None
    for i, p in enumerate(np.asarray(probs, dtype=np.float64)):
        t = i * frame
        if p >= config.threshold:
            silent_since = None
            if start is None:
                start = t
        elif start is not None and p < config.exit_threshold:
            silent_since = t if silent_since is None else silent_since
            if t - silent_since >= min_silence:
                if silent_since - start > min_speech:
                    found.append([start, silent_since])
                start = silent_since = None
    if start is not None and n_samples - start > min_speech:
        found.append([start, n_samples])
    pad = config.pad * SAMPLE_RATE
    merged: list[list[float]] = []
    for a, b in found:
        a, b = max(0.0, a - pad), min(float(n_samples), b + pad)
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return tuple((a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in merged)


def _zero_state() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32)


def _score(frames: np.ndarray, context: np.ndarray, state: tuple[np.ndarray, np.ndarray]):
    """The model's probabilities of consecutive ``frames`` (N, FRAME) that follow the ``CONTEXT``
    samples ``context``, from the recurrent ``state``; and the state after them."""
    context = np.concatenate([context[None], frames[:-1, -CONTEXT:]])
    probs, h, c = load_session().run(["speech_probs", "hn", "cn"],
                                     {"input": np.concatenate([context, frames], axis=1), "h": state[0], "c": state[1]})
    return np.asarray(probs, dtype=np.float32).reshape(-1), (h, c)


class VadStream:
    """Incremental detection over consecutive blocks of one 16 kHz signal (see module doc)."""

    def __init__(self, detector: VoiceActivityDetector):
        self.detector = detector
        self.samples = 0
        self._pending = np.zeros(0, dtype=np.float32)
        self._state = _zero_state()
        self._frames = 0  # frames scored
        self._quiet = 0  # frames since the last one at or above the threshold
        self._heard = -1  # the last frame at HEARD_DBFS or HEARD or above (-1: none)
        self._since = 0  # the first frame the state has seen since it (re)started
        memory = detector.config.reset_after
        self._memory = 0 if memory is None else max(1, round(memory / FRAME_SECONDS))  # frames
        self._recent = np.zeros(self._memory * FRAME + CONTEXT, np.float32)  # the last samples scored
        self._probs: list[np.ndarray] = []
        self._done = False

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Add the next samples; returns the probabilities of the frames they completed."""
        if self._done:
            raise ConfigError("this VAD stream is finished")
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.samples += len(block)
        x = np.concatenate([self._pending, block]) if len(self._pending) else block
        n = len(x) // FRAME * FRAME
        self._pending = x[n:].copy()
        return self._run(x[:n])

    def _run(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros(0, dtype=np.float32)
        frames = x.reshape(-1, FRAME)
        out = []
        lo = 0
        while lo < len(frames):  # calls end at multiples of _STEP frames of the signal (cut-independent)
            part = frames[lo : lo + _STEP - self._frames % _STEP]
            probs, self._state = _score(part, self._recent[-CONTEXT:], self._state)
            out.append(probs)
            lo += len(part)
            self._frames += len(part)
            self._recent = np.concatenate([self._recent, part.reshape(-1)])[-len(self._recent):]
            loud = np.flatnonzero(probs >= self.detector.config.threshold)
            self._quiet = len(part) - 1 - loud[-1] if len(loud) else self._quiet + len(part)
            heard = np.flatnonzero((probs >= HEARD) | (np.sqrt(np.mean(np.square(part), axis=1)) >= _HEARD_RMS))
            self._heard = self._frames - len(part) + heard[-1] if len(heard) else self._heard
            if (self._frames % _STEP == 0 and self._quiet >= self._memory > 0
                    and self._heard >= self._since):  # forget what came before
                recent = self._recent[CONTEXT:].reshape(-1, FRAME)
                self._state = _score(recent, self._recent[:CONTEXT], _zero_state())[1]
                self._since = self._frames - self._memory
        probs = np.concatenate(out)
        self._probs.append(probs)
        return probs

    def finish(self) -> SpeechActivity:
        """Score the last partial frame (zero-padded) and return the activity of the whole signal."""
        if not self._done:
            if len(self._pending):
                self._run(np.concatenate([self._pending, np.zeros(FRAME - len(self._pending), np.float32)]))
            self._pending = np.zeros(0, dtype=np.float32)
            self._done = True
        probs = np.concatenate(self._probs) if self._probs else np.zeros(0, np.float32)
        segments = segments_from_probabilities(probs, self.samples, self.detector.config)
        return SpeechActivity(segments, self.samples / SAMPLE_RATE, probs)


class VoiceActivityDetector:
    """Speech segments of 16 kHz mono signals (other rates are resampled); see module doc."""

    def __init__(self, config: VadConfig | dict | None = None, **overrides: Any):
        if config is None:
            config = VadConfig()
        elif isinstance(config, dict):
            config = cfg.from_dict(VadConfig, config, where="vad config")
        self.config = cfg.replace(config, **overrides) if overrides else config

    def stream(self) -> VadStream:
        """A new stream: ``feed`` it 16 kHz blocks in order, then ``finish`` it."""
        return VadStream(self)

    def detect(self, y: np.ndarray, sr: int = SAMPLE_RATE) -> SpeechActivity:
        """The speech activity of a whole mono signal ``y`` at ``sr`` Hz."""
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise ConfigError(f"voice activity detection takes a mono signal, got shape {y.shape}")
        if sr != SAMPLE_RATE:
            import soxr

            y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
        stream = self.stream()
        stream.feed(y)
        return stream.finish()

    def detect_file(self, path: str | Path, block_seconds: float = 30.0) -> SpeechActivity:
        """The speech activity of a media file's audio track, decoded and scored block by block."""
        from avemo.media import iter_audio

        stream = self.stream()
        for block in iter_audio(path, SAMPLE_RATE, block_seconds=block_seconds):
            stream.feed(block)
        return stream.finish()


def speech_segments(y: np.ndarray, sr: int = SAMPLE_RATE, config: VadConfig | None = None):
    """Speech segments ``((start, end), ...)`` in seconds of mono ``y`` at ``sr`` Hz."""
    return VoiceActivityDetector(config).detect(y, sr).segments
