"""Generate media files from material that ships in our dependencies.

Used by tests (edge cases: no audio track, no face, 0.2 s clip, 10-minute clip, 8 kHz
stereo...), by the demo, and by scale benchmarks. Faces come from the portrait that ships
with matplotlib (``mpl-data/sample_data/grace_hopper.jpg``, a public-domain US Navy
photograph), pasted at a slowly drifting position and scale; audio is synthetic (a
harmonic "voice" with a pitch contour and syllable-like amplitude envelope, a formant-synthesised
"speech" utterance that a voice-activity detector accepts as speech, the same with its second half
silent, a tone, or noise). Encoding is PyAV: H.264/VP9/MPEG-4/FLV video with AAC/Opus/MP3 audio, or
WAV/FLAC/MP3/OGG audio files.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

AudioKind = Literal["voice", "speech", "speech_then_silence", "tone", "noise", "silence"]

# (F1, F2, F3) in Hz of the vowels /a/, /i/, /u/, /e/, /o/, /ae/ (adult male averages, Peterson &
# Barney 1952, "Control Methods Used in a Study of the Vowels", Table II)
_VOWELS = np.array([(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
                    (570, 840, 2410), (660, 1720, 2410)], dtype=np.float64)
_FORMANT_BANDWIDTHS = ((90.0, 1.0), (110.0, 0.6), (160.0, 0.3))  # (bandwidth Hz, gain) of F1..F3

# container suffix -> (video codec, audio codec, pixel format)
_VIDEO_CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"),
    ".mkv": ("libx264", "aac", "yuv420p"),
    ".ts": ("libx264", "aac", "yuv420p"),
    ".webm": ("libvpx-vp9", "libopus", "yuv420p"),
    ".avi": ("mpeg4", "libmp3lame", "yuv420p"),
    ".flv": ("flv", "libmp3lame", "yuv420p"),
    ".wmv": ("wmv2", "wmav2", "yuv420p"),
}
_AUDIO_CODECS = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".ogg": "libopus",
    ".wma": "wmav2",
}


@functools.lru_cache(maxsize=1)
def portrait() -> np.ndarray:
    """The portrait shipped with matplotlib, as an RGB uint8 array (about 600x512)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@functools.lru_cache(maxsize=8)
def _face_crop(height: int) -> np.ndarray:
    """The portrait's head and shoulders scaled to ``height`` pixels."""
    import cv2

    img = portrait()
    h, w = img.shape[:2]
    scale = height / h
    return cv2.resize(img, (max(1, int(w * scale)), height), interpolation=cv2.INTER_AREA)


def synth_audio(
    duration: float,
    sample_rate: int = 16000,
    kind: AudioKind = "voice",
    channels: int = 1,
    seed: int = 0,
    pitch: float = 160.0,
) -> np.ndarray:
    """A (samples, channels) float32 signal in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(duration * sample_rate)))
    t = np.arange(n) / sample_rate
    if kind == "silence":
        y = np.zeros(n)
    elif kind == "noise":
        y = 0.3 * rng.standard_normal(n)
    elif kind == "tone":
        y = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    elif kind in ("speech", "speech_then_silence"):
        y = _speech(n, sample_rate, rng, pitch)
        y = 0.5 * y / max(1e-6, np.abs(y).max())
        if kind == "speech_then_silence":  # the first half speech, the second silence
            y[n // 2:] = 0.0
    elif kind == "voice":
        # a glottal-like harmonic source with a slow pitch contour, shaped by 4 syllables/s
        f0 = pitch * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 16) if k * pitch * 1.2 < sample_rate / 2)
        envelope = np.clip(np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, np.pi)), 0, None) ** 0.5
        y = y * envelope + 0.01 * rng.standard_normal(n)
        y = 0.5 * y / max(1e-6, np.abs(y).max())
    else:
        raise ValueError(f"unknown audio kind {kind!r}")
    y = np.repeat(y[:, None], channels, axis=1)
    if channels > 1:
        y[:, 1:] *= 0.8  # channels differ a little
    return y.astype(np.float32)


def _speech(n: int, sr: int, rng: np.random.Generator, pitch: float) -> np.ndarray:
    """A formant-synthesised utterance (Klatt 1980, "Software for a cascade/parallel formant
    synthesizer", in its simplest form): a glottal pulse train with falling intonation through three
    resonators whose frequencies glide between vowel targets, one syllable every 0.16-0.3 s, each
    opened by a short unvoiced (fricative-like) noise burst. Silero VAD scores it as speech
    throughout, which the harmonic "voice" (no formants) is not."""
    from scipy.signal import butter, lfilter

    t = np.arange(n) / sr
    duration = n / sr
    edges = [0.0]
    while edges[-1] < duration:
        edges.append(edges[-1] + rng.uniform(0.16, 0.3))
    targets = _VOWELS[rng.integers(len(_VOWELS), size=len(edges))]
    centres = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    f0 = pitch * (1 - 0.15 * t / duration) * (1 + 0.08 * np.sin(2 * np.pi * 1.3 * t))
    source = lfilter([1.0], [1.0, -0.95], np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0))
    voiced, unvoiced = np.zeros(n), np.zeros(n)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        ia, ib = int(a * sr), min(n, int(b * sr))
        onset = int((ib - ia) * rng.uniform(0.15, 0.3))
        if ib - ia - onset > 1:
            voiced[ia + onset : ib] = np.sin(np.pi * np.linspace(0, 1, ib - ia - onset)) ** 0.5 * rng.uniform(0.6, 1.0)
        if onset > 1 and rng.random() < 0.6:
            unvoiced[ia : ia + onset] = np.hanning(onset) * rng.uniform(0.05, 0.2)
    excitation = source * voiced
    y = np.zeros(n)
    for j, (bandwidth, gain) in enumerate(_FORMANT_BANDWIDTHS):
        y += gain * _glide(excitation, np.interp(t, centres, targets[:-1, j]), bandwidth, sr)
    b, a = butter(4, [2500 / (sr / 2), min(7000, 0.45 * sr) / (sr / 2)], "band")
    y = y / (np.abs(y).max() + 1e-9) + lfilter(b, a, rng.standard_normal(n)) * unvoiced
    return y + 0.002 * rng.standard_normal(n)


def _glide(x: np.ndarray, freq: np.ndarray, bandwidth: float, sr: int, block: int = 80) -> np.ndarray:
    """``x`` through a two-pole resonator whose centre frequency follows ``freq`` (per sample),
    updated every ``block`` samples with the filter state carried over."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bandwidth / sr)
    out = np.empty_like(x)
    state = np.zeros(2)
    for lo in range(0, len(x), block):
        a = [1.0, -2 * r * np.cos(2 * np.pi * freq[lo] / sr), r * r]
        out[lo : lo + block], state = lfilter([1 - r], a, x[lo : lo + block], zi=state)
    return out


_TINT_G = np.clip(np.arange(256) * 0.9 + 10, 0, 255).astype(np.uint8)
_TINT_B = np.clip(np.arange(256) * 0.8 + 20, 0, 255).astype(np.uint8)


def synth_frame(
    t: float, size: tuple[int, int], face: bool, rng_phase: float = 0.0, face_scale: float = 0.6
) -> np.ndarray:
    """One RGB frame of ``size`` (width, height): a textured background, optionally the portrait."""
    w, h = size
    cols = 40 * np.sin(np.arange(w) / max(w, 1) * 6.0 + t * 0.5 + rng_phase)
    rows = 96 + 30 * np.cos(np.arange(h) / max(h, 1) * 4.0 - t * 0.3)
    base = np.clip(rows[:, None] + cols[None, :], 0, 255).astype(np.uint8)  # separable: cheap at 720p
    frame = np.dstack([base, _TINT_G[base], _TINT_B[base]])
    if face:
        fh = max(16, int(h * face_scale * (1 + 0.05 * np.sin(t * 1.3))))
        crop = _face_crop(fh)
        ch, cw = crop.shape[:2]
        cx = int((w - cw) / 2 + 0.08 * w * np.sin(t * 0.9 + rng_phase))
        cy = int((h - ch) / 2 + 0.04 * h * np.cos(t * 0.7))
        x0, y0 = max(cx, 0), max(cy, 0)
        x1, y1 = min(cx + cw, w), min(cy + ch, h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = crop[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
    return frame


Backdrop = Literal["gradient", "noise", "blocks"]


def backdrop(size: tuple[int, int], kind: Backdrop = "gradient", seed: int = 0) -> np.ndarray:
    """A face-free RGB scene of ``size`` (width, height) for :func:`wide_shot`.

    ``"gradient"``: a colour gradient with low-frequency blotches and sensor-like noise;
    ``"noise"``: uniform noise in every pixel; ``"blocks"``: random coloured rectangles (a street or
    a room seen from afar), lightly blurred, with noise.
    """
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "blocks":
        img = np.full((h, w, 3), rng.integers(60, 200, 3), dtype=np.float64)
        for _ in range(60):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            bw, bh = int(rng.integers(w // 40, w // 5)), int(rng.integers(h // 30, h // 3))
            img[y0 : y0 + bh, x0 : x0 + bw] = rng.integers(20, 240, 3)
        img = cv2.GaussianBlur(img, (0, 0), max(1.0, h / 540))
    elif kind == "gradient":
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([60 + 110 * xx, 70 + 90 * yy, 90 + 50 * (xx + yy)], axis=-1)
        blotches = rng.normal(0.0, 25.0, (max(2, h // 40), max(2, w // 40), 3))
        img = img + cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        raise ValueError(f"unknown backdrop {kind!r}; known: gradient, noise, blocks")
    return np.clip(img + rng.normal(0.0, 4.0, img.shape), 0, 255).astype(np.uint8)


def wide_shot(
    frame: np.ndarray, face_height: float, fraction: float, scene: np.ndarray, at: tuple[float, float] = (0.3, 0.4)
) -> tuple[np.ndarray, float, np.ndarray]:
    """``frame`` scaled so that its face (``face_height`` pixels high) is ``fraction`` of the height of
    ``scene`` and pasted into a copy of it, its top-left corner at ``at`` (fractions of the scene's
    width and height; the pasted frame is clipped at the scene's edges).

    Returns ``(image, scale, origin)``: a point ``p`` of ``frame`` is ``p * scale + origin`` in ``image``.
    A wide shot (a conference or street video where the face is 1/15-1/25 of the frame) made from a
    close-up, for testing and measuring small-face detection.
    """
    import cv2

    h, w = scene.shape[:2]
    scale = fraction * h / face_height
    small = cv2.resize(
        frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA
    )
    x0, y0 = int(at[0] * w), int(at[1] * h)
    x1, y1 = min(x0 + small.shape[1], w), min(y0 + small.shape[0], h)
    image = scene.copy()
    image[y0:y1, x0:x1] = small[: y1 - y0, : x1 - x0]
    return image, scale, np.array([x0, y0], dtype=np.float64)


@dataclass(frozen=True)
class ClipSpec:
    """What :func:`write_clip` produces."""

    duration: float = 2.0
    size: tuple[int, int] = (320, 240)
    fps: float = 25.0
    face: bool = True
    audio: AudioKind | None = "voice"
    sample_rate: int = 16000
    channels: int = 1
    seed: int = 0
    pitch: float = 160.0
    #: the audio track's span in seconds, end None for the clip's end: a track that starts after the
    #: video (a recorder that joined late) or stops before it
    audio_start: float = 0.0
    audio_end: float | None = None


def write_clip(path: str | Path, spec: ClipSpec | None = None, **overrides) -> Path:
    """Write a synthetic video (or, for audio suffixes, an audio file) to ``path``.

    The file is written to a temporary name in the same folder and renamed when complete.
    """
    spec = spec or ClipSpec()
    if overrides:
        spec = ClipSpec(**{**spec.__dict__, **overrides})
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path) as tmp:
        if suffix in _AUDIO_CODECS:
            if spec.audio is None:
                raise ValueError("an audio file needs audio")
            _write(tmp, spec, None, _AUDIO_CODECS[suffix])
        elif suffix in _VIDEO_CODECS:
            vcodec, acodec, _ = _VIDEO_CODECS[suffix]
            _write(tmp, spec, vcodec, acodec if spec.audio is not None else None)
        else:
            raise ValueError(f"cannot synthesise {suffix!r} files")
    return path


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` (its suffix, lower-cased) to write the file to: renamed to ``path``
    when the block ends, removed when it raises (no half-written file under ``path``)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix.lower()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _muxer(path: Path) -> str | None:
    """The muxer FFmpeg cannot tell from ``path``'s name (a temporary name's suffix aside): None for the others."""
    return {".ogg": "ogg", ".mkv": "matroska", ".webm": "webm"}.get(path.suffix.lower())


def _write(path: Path, spec: ClipSpec, vcodec: str | None, acodec: str | None) -> None:
    with av.open(str(path), mode="w", format=_muxer(path)) as out:
        vstream = astream = None
        if vcodec is not None:
            rate = Fraction(spec.fps).limit_denominator(1001)
            vstream = out.add_stream(vcodec, rate=rate)
            vstream.width, vstream.height = spec.size
            vstream.pix_fmt = "yuv420p"
            if vcodec == "libx264":
                vstream.options = {"preset": "ultrafast", "crf": "23"}
            elif vcodec == "libvpx-vp9":
                vstream.options = {"deadline": "realtime", "cpu-used": "8"}
        audio = None
        if acodec is not None:
            sr = spec.sample_rate
            if acodec == "libopus" and sr not in (8000, 12000, 16000, 24000, 48000):
                sr = 48000
            if path.suffix.lower() == ".flv" and sr not in (11025, 22050, 44100):
                sr = 44100  # FLV stores MP3 only at these rates
            astream = out.add_stream(acodec, rate=sr)
            if acodec == "wmav2":
                astream.bit_rate = 64000  # FFmpeg's WMA encoder sets none of its own (and refuses to open)
            layout = "mono" if spec.channels == 1 else "stereo"
            astream.layout = layout
            length = (spec.duration if spec.audio_end is None else spec.audio_end) - spec.audio_start
            audio = synth_audio(length, sr, spec.audio, spec.channels, spec.seed, spec.pitch)
        if vstream is not None:
            n_frames = max(1, int(round(spec.duration * spec.fps)))
            phase = float(np.random.default_rng(spec.seed).uniform(0, 2 * np.pi))
            for i in range(n_frames):
                img = synth_frame(i / spec.fps, spec.size, spec.face, phase)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream is not None and audio is not None:
            _encode_audio(out, astream, audio, int(round(spec.audio_start * astream.codec_context.sample_rate)))


def _encode_audio(out, astream, audio: np.ndarray, start: int = 0) -> None:
    """Encode ``audio`` (samples, channels) into ``astream``, its first sample at ``start`` (in samples)."""
    sr = astream.codec_context.sample_rate
    fmt = astream.codec_context.format.name if astream.codec_context.format else "s16"
    layout = astream.layout.name
    frame_size = astream.codec_context.frame_size or 1024
    resampler = av.AudioResampler(format=fmt, layout=layout, rate=sr)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    pts = start
    for i in range(0, len(pcm), frame_size):
        chunk = np.ascontiguousarray(pcm[i : i + frame_size])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = sr
        frame.pts = pts
        frame.time_base = Fraction(1, sr)
        pts += chunk.shape[0]
        for rf in resampler.resample(frame):
            for packet in astream.encode(rf):
                out.mux(packet)
    for packet in astream.encode(None):
        out.mux(packet)


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int = 16000, layout: str | None = None) -> Path:
    """Encode ``samples`` ((samples, channels) float in [-1, 1]) into an audio file of a suffix of
    :data:`_AUDIO_CODECS`, its channels in FFmpeg's ``layout`` (``"5.1"``, ``"7.1"``, ``"quad"``...: a
    surround recording; a WAV file stores it as its channel mask; default: mono or stereo by the
    channel count). Written to a temporary name and renamed."""
    path = Path(path)
    samples = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)
    layout = layout or ("mono" if samples.shape[1] == 1 else "stereo")
    if len(av.AudioLayout(layout).channels) != samples.shape[1]:
        raise ValueError(f"layout {layout!r} does not have {samples.shape[1]} channels")
    with _replacing(path) as tmp:
        with av.open(str(tmp), mode="w", format=_muxer(path)) as out:
            stream = out.add_stream(_AUDIO_CODECS[path.suffix.lower()], rate=sample_rate)
            stream.layout = layout
            _encode_audio(out, stream, samples)
    return path

def write_audio_streams(path: str | Path, kinds: tuple[AudioKind, ...], *, duration: float = 2.0,
                        sample_rate: int = 16000, default: int = 0) -> Path:
    """An audio-only Matroska file with one AAC stream per entry of ``kinds`` (e.g. a silent track
    first and the voice second, as a recording with a muted channel has); stream ``default``
    carries the default flag. Written to a temporary name and renamed."""
    path = Path(path)
    with _replacing(path) as tmp:
        with av.open(str(tmp), mode="w", format="matroska") as out:
            streams = []
            for i, _ in enumerate(kinds):
                stream = out.add_stream("aac", rate=sample_rate)
                stream.layout = "mono"
                stream.disposition = av.stream.Disposition.default if i == default else av.stream.Disposition(0)
                streams.append(stream)
            for stream, kind in zip(streams, kinds, strict=True):
                _encode_audio(out, stream, synth_audio(duration, sample_rate, kind))
    return path


def write_frames(path: str | Path, frames, fps: float = 25.0, *, preset: str = "ultrafast", crf: int = 18,
                 keyframes: int | None = None, audio: AudioKind | None = None, sample_rate: int = 16000) -> Path:
    """Encode RGB ``frames`` ((H, W, 3) uint8 each) as H.264 (libx264 ``preset``, ``crf``, a keyframe every
    ``keyframes`` frames where given) at ``fps`` into ``path`` (the container its suffix names), with
    :func:`synth_audio` of ``audio`` over the frames' length as AAC where given; written to a temporary
    name and renamed."""
    path = Path(path)
    with _replacing(path) as tmp:
        h, w = frames[0].shape[:2]
        with av.open(str(tmp), "w", format=_muxer(path)) as out:
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            every = {} if keyframes is None else {"g": str(keyframes), "keyint_min": str(keyframes)}
            stream.options = {"preset": preset, "crf": str(crf), **every}
            astream = None
            if audio is not None:
                astream = out.add_stream("aac", rate=sample_rate)
                astream.layout = "mono"
            for img in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            if astream is not None:
                _encode_audio(out, astream, synth_audio(len(frames) / fps, sample_rate, audio))
    return path


def write_shifted(src: str | Path, path: str | Path, seconds: float) -> Path:
    """Copy the packets of ``src`` into ``path`` (the container its suffix names) with every time stamp
    ``seconds`` later, as a cut from a longer recording or an MPEG-TS capture keeps them: the same
    media, whose streams start at ``seconds``. Written to a temporary name and renamed."""
    path = Path(path)
    with _replacing(path) as tmp:
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format=_muxer(path)) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
            for packet in inp.demux():
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                shift = int(round(seconds / packet.time_base))
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path
