"""Realistic transmission channels for audio: what a voice goes through between a speaker and a file.

Used to measure robustness (the degraded-audio benchmark) and as training augmentation. A
channel maps a mono float32 signal at ``sr`` Hz to a mono float32 signal of the same length
and alignment: output sample ``i`` belongs to the time of input sample ``i``.

==========  ==================================  ====================================================
kind        readable names                      what
==========  ==================================  ====================================================
codec       ``mp3_16k``, ``aac_24k``,           lossy encode + decode in memory through PyAV (FFmpeg),
            ``opus_12k`` (kbit/s)               in a container that signals the encoder delay
telephone   ``telephone``, ``telephone_g711``   8 kHz, 300-3400 Hz band-pass, optionally G.711 mu-law
noise       ``noise_white_10db``,               generated white / pink / brown noise at an SNR
            ``noise_pink_5db``, ...
babble      ``babble_5db``                      the sum of N other talkers (signals given by the caller)
                                                at an SNR
reverb      ``reverb_0.6s``                     a simulated shoebox room with a target RT60
gain        ``gain_-20db``, ``gain_+12db``      a gain in dB; samples pushed over full scale are clipped
==========  ==================================  ====================================================

A channel is named by a readable name or by a spec string in the style of the extractor specs
(:meth:`avemo.extraction.ExtractorSpec.parse`): a kind or a readable name, then ``key=value``
overrides, e.g. ``noise:kind=pink:snr=5``, ``mp3:kbps=32``, ``babble_5db:talkers=8``. Values are
read as JSON when they parse, else as text. :func:`list_channels` lists the standard conditions.

**Determinism.** :func:`apply_channel` depends only on the signal, the channel, ``seed`` and
``item`` (an integer naming the signal, e.g. a hash of its content, so that each clip of a
benchmark gets its own noise and room under one seed).

**Levels.** The SNR is the ratio of the signal's level to the noise's mean power. The signal's
level is, by default (``reference="active"``), its mean power over its active 20 ms frames,
those within 40 dB of its loudest frame: a simplified active speech level in the spirit of
ITU-T P.56, so that the silence around an utterance does not lower the SNR it is heard at;
``reference="mean"`` takes the mean power of the whole signal.

**Reverberation** is simulated with pyroomacoustics' image-source model (Allen & Berkley 1979,
"Image method for efficiently simulating small-room acoustics", JASA 65(4); Scheibler et al.
2018, "Pyroomacoustics: A Python package for audio room simulations and array processing
algorithms", ICASSP), chosen over our own simulation because it is a maintained, tested C++
implementation of the same method. Sabine's formula (pyroomacoustics' ``inverse_sabine``) gives
decays 10-40 % off the target in the image-source model, so the wall absorption is corrected
until the response's decay, measured by Schroeder backward integration (Schroeder 1965, "New
method of measuring reverberation time", JASA 37(3); T20: the -5 to -25 dB slope extrapolated
to 60 dB), is within 5 % of the target. Rooms (geometry 3-8 x 3-6 x 2.5-3.5 m, source and
microphone at least 1 m apart and 0.5 m from the walls) form a library of ``rooms`` responses
drawn from the seed and computed once per process; each signal is convolved with one of them,
picked by ``(seed, item)``. The response is normalised to unit energy (the level stays about
the same) and aligned on its direct path (no added delay).
"""

from __future__ import annotations

import functools
import io
import json
import re
import string
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Literal

import numpy as np

from avemo import config as cfg
from avemo.errors import AvemoError, ConfigError, FeatureError

Reference = Literal["active", "mean"]

_REGISTRY: dict[str, type[Channel]] = {}


class ChannelUnavailableError(AvemoError):
    """This machine cannot apply the channel (e.g. its PyAV build lacks the encoder): skip the condition."""


# ----------------------------------------------------------------------------- levels
def _frame_powers(y: np.ndarray, sr: int) -> np.ndarray | None:
    """Mean power of each whole 20 ms frame of ``y``, or None when it has fewer than two frames."""
    frame = max(1, int(0.02 * sr))
    n = len(y) // frame
    if n < 2:
        return None
    return (np.asarray(y[: n * frame], dtype=np.float64).reshape(n, frame) ** 2).mean(axis=1)


def _is_active(power: np.ndarray) -> np.ndarray:
    """Frames within 40 dB of the loudest one."""
    return power >= power.max() * 1e-4


def signal_level(y: np.ndarray, sr: int, reference: Reference = "active") -> float:
    """Mean power of ``y``: over its active 20 ms frames (``"active"``, see module doc) or all of it."""
    power = _frame_powers(y, sr) if reference == "active" else None
    if power is None:
        return float(np.mean(np.asarray(y, dtype=np.float64) ** 2)) if len(y) else 0.0
    return float(power[_is_active(power)].mean())


def _scale_to_snr(y: np.ndarray, noise: np.ndarray, sr: int, snr: float, reference: Reference) -> np.ndarray:
    """``y`` plus ``noise`` scaled so that level(y) / mean power(noise) is ``snr`` dB."""
    signal = signal_level(y, sr, reference)
    if signal <= 0.0:
        raise FeatureError("the signal is silent: a signal-to-noise ratio is undefined")
    power = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
    if power <= 0.0:
        raise FeatureError("the noise is silent: a signal-to-noise ratio is undefined")
    gain = np.sqrt(signal / (power * 10.0 ** (snr / 10.0)))
    return (np.asarray(y, dtype=np.float64) + gain * noise).astype(np.float32)


# ----------------------------------------------------------------------------- the base class
class Channel(ABC):
    """A transmission channel of one ``kind`` with its ``Config`` dataclass (see module doc)."""

    kind: ClassVar[str]
    Config: ClassVar[type]
    #: the readable names of this kind, or None: a template with config fields in braces, each
    #: standing for one value of a ``Literal`` field or for a number, e.g. ``"noise_{kind}_{snr}db"``
    names: ClassVar[str | None] = None
    #: the kind draws from the caller's source signals (babble)
    needs_sources: ClassVar[bool] = False

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_readable(cls, name: str) -> dict[str, Any] | None:
        """Config options of ``name`` when it is a readable name of this kind (see ``names``), else None."""
        match = re.fullmatch(_names_regex(cls), name) if cls.names else None
        if match is None:
            return None
        literal = _literal_values(cls.Config)
        return {k: v if k in literal else float(v) for k, v in match.groupdict().items()}

    def readable(self) -> str | None:
        """The readable name of this config (``names`` filled in), or None when it has none."""
        if self.names is None:
            return None
        options = cfg.to_dict(self.config)
        return self.names.format(**{k: v if isinstance(v, str) else _number(v) for k, v in options.items()})

    @property
    def spec(self) -> str:
        """Canonical spec string: ``kind:key=value:...`` with every option."""
        options = cfg.to_dict(self.config)
        text = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(options.items())]
        return ":".join([self.kind, *text])

    @property
    def name(self) -> str:
        """The readable name when one names exactly this config, else the spec string."""
        readable = self.readable()
        if readable is not None and parse_channel(readable).config == self.config:
            return readable
        return self.spec

    def to_dict(self) -> dict[str, Any]:
        """What identifies the channel (part of a feature cache key)."""
        return {"kind": self.kind, "config": cfg.to_dict(self.config)}

    def check(self) -> None:
        """Raise :class:`ChannelUnavailableError` when this machine cannot apply the channel."""
        return None  # most kinds need nothing beyond numpy and scipy

    @abstractmethod
    def apply(self, y: np.ndarray, sr: int, rng: np.random.Generator, *, seed: int,
              sources: Sequence[np.ndarray] | None) -> np.ndarray:
        """The channel's output for mono float32 ``y`` at ``sr`` Hz (same length)."""

    def __repr__(self) -> str:
        return f"Channel({self.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.kind == self.kind and other.config == self.config

    def __hash__(self) -> int:
        return hash((self.kind, self.config))


def register_channel(cls: type[Channel]) -> type[Channel]:
    """Class decorator adding a channel kind to the registry under ``cls.kind``."""
    if cls.kind in _REGISTRY:
        raise TypeError(f"channel kind {cls.kind!r} is registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def _number(value: float) -> str:
    """``16.0`` -> ``16``, ``0.6`` -> ``0.6``: numbers as they read in names."""
    return f"{value:g}"


def _literal_values(config: type) -> dict[str, tuple[str, ...]]:
    """The values of each ``Literal`` field of dataclass ``config``."""
    hints = typing.get_type_hints(config)
    return {k: typing.get_args(t) for k, t in hints.items() if typing.get_origin(t) is Literal}


@functools.cache
def _names_regex(cls: type[Channel]) -> str:
    """The regular expression of ``cls.names``: each field a named group of its values or of a number."""
    literal = _literal_values(cls.Config)
    parts = []
    for text, field, _, _ in string.Formatter().parse(cls.names):
        parts.append(re.escape(text))
        if field is not None:
            values = "|".join(map(re.escape, literal[field])) if field in literal else r"[+-]?\d+(?:\.\d+)?"
            parts.append(f"(?P<{field}>{values})")
    return "".join(parts)


# ----------------------------------------------------------------------------- codecs
# codec -> (FFmpeg encoder, container): containers that carry the encoder delay (LAME's Xing
# header, MP4 edit lists, Ogg pre-skip), so that the decoder trims it and alignment is kept
_CODECS = {"mp3": ("libmp3lame", "mp3"), "aac": ("aac", "ipod"), "opus": ("libopus", "ogg")}


@dataclass(frozen=True)
class CodecConfig:
    """Lossy codec round trip: ``codec`` at ``kbps`` kbit/s; ``encoder``: the FFmpeg encoder ("" = usual)."""

    codec: Literal["mp3", "aac", "opus"] = "mp3"
    kbps: float = 16.0
    encoder: str = ""

    def __post_init__(self):
        if not 1.0 <= self.kbps <= 512.0:
            raise ConfigError(f"kbps must be in [1, 512], got {self.kbps}")


@register_channel
class Codec(Channel):
    kind = "codec"
    Config = CodecConfig
    names = "{codec}_{kbps}k"

    @property
    def encoder(self) -> str:
        return self.config.encoder or _CODECS[self.config.codec][0]

    def check(self) -> None:
        import av

        try:
            av.codec.Codec(self.encoder, "w")
        except (ValueError, av.error.FFmpegError):
            raise ChannelUnavailableError(
                f"channel {self.name}: this PyAV/FFmpeg build has no {self.encoder} encoder; "
                "the condition cannot be applied here"
            ) from None
        container = _CODECS[self.config.codec][1]
        if container not in av.formats_available:
            raise ChannelUnavailableError(f"channel {self.name}: this FFmpeg build cannot write {container} files")

    def apply(self, y, sr, rng, *, seed, sources):
        import av

        self.check()
        rates = av.codec.Codec(self.encoder, "w").audio_rates
        rate = sr if not rates or sr in rates else min((r for r in rates if r >= sr), default=max(rates))
        x = np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0)
        if rate != sr:
            import soxr

            x = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)
        try:
            data = _encode(x, rate, self.encoder, _CODECS[self.config.codec][1], int(self.config.kbps * 1000))
            out = _decode(data, sr)
        except av.error.FFmpegError as exc:
            raise ConfigError(f"channel {self.name}: {self.encoder} cannot encode this ({exc})") from None
        return _fit(out, len(y))


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cropped or zero-padded at its end to ``n`` samples (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), np.float32)])


def _encode(x: np.ndarray, sr: int, encoder: str, container: str, bit_rate: int) -> bytes:
    """``x`` (mono float32) encoded by ``encoder`` at ``bit_rate`` bit/s into an in-memory ``container``."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(encoder, rate=sr)
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=sr)
        step = ctx.frame_size or 1024
        for start in range(0, len(x), step):
            chunk = np.ascontiguousarray(x[start : start + step])[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _decode(data: bytes, sr: int) -> np.ndarray:
    """The first audio stream of an in-memory file as mono float32 at ``sr`` Hz."""
    import av

    parts = []
    with av.open(io.BytesIO(data), mode="r") as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        for frame in inp.decode(inp.streams.audio[0]):
            parts.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
        parts.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


# ----------------------------------------------------------------------------- telephone
@dataclass(frozen=True)
class TelephoneConfig:
    """Narrow-band telephone: resample to ``sample_rate``, band-pass ``low_hz``-``high_hz``
    (Butterworth of ``order``, run forward and backward: no delay), optionally G.711 mu-law."""

    sample_rate: int = 8000
    low_hz: float = 300.0
    high_hz: float = 3400.0
    order: int = 6
    mulaw: bool = False

    def __post_init__(self):
        if not 0 < self.low_hz < self.high_hz < self.sample_rate / 2:
            raise ConfigError(f"need 0 < low_hz < high_hz < sample_rate/2, got {self.low_hz}, {self.high_hz}, "
                             f"{self.sample_rate}")
        if not 1 <= self.order <= 12:
            raise ConfigError(f"order must be in [1, 12], got {self.order}")


def g711_mulaw(x: np.ndarray) -> np.ndarray:
    """``x`` (float, full scale 1) through G.711 mu-law 8-bit encoding and decoding (ITU-T G.711,
    on 14-bit samples as in the reference code that CPython's ``audioop`` also follows)."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int64) >> 2
    magnitude = np.minimum(np.minimum(np.abs(pcm), 8159) + 0x21, 0x1FFF)  # 0x1FFF: the top code
    segment = np.clip(np.floor(np.log2(magnitude)).astype(np.int64) - 5, 0, 7)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    decoded = (((mantissa << 3) + 0x84) << segment) - 0x84
    return (np.where(pcm < 0, -decoded, decoded) / 32768.0).astype(np.float32)


@register_channel
class Telephone(Channel):
    kind = "telephone"
    Config = TelephoneConfig
    @classmethod
    def from_readable(cls, name):
        return {"telephone": {"mulaw": False}, "telephone_g711": {"mulaw": True}}.get(name)

    def readable(self):
        return "telephone_g711" if self.config.mulaw else "telephone"

    def apply(self, y, sr, rng, *, seed, sources):
        import soxr
        from scipy.signal import butter, sosfiltfilt

        c = self.config
        x = np.asarray(y, dtype=np.float64)
        narrow = soxr.resample(x, sr, c.sample_rate, quality="VHQ") if sr != c.sample_rate else x
        sos = butter(c.order, [c.low_hz, c.high_hz], btype="bandpass", fs=c.sample_rate, output="sos")
        narrow = sosfiltfilt(sos, narrow) if len(narrow) > 3 * (2 * len(sos) + 1) else narrow * 0.0
        if c.mulaw:
            narrow = g711_mulaw(narrow)
        out = soxr.resample(np.asarray(narrow, np.float64), c.sample_rate, sr, quality="VHQ") \
            if sr != c.sample_rate else narrow
        return _fit(out, len(y))


# ----------------------------------------------------------------------------- noise and babble
@dataclass(frozen=True)
class NoiseConfig:
    """Generated ``kind`` noise (power spectrum 1, 1/f, 1/f^2) at ``snr`` dB (see module doc for levels)."""

    kind: Literal["white", "pink", "brown"] = "white"
    snr: float = 10.0
    reference: Reference = "active"


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of zero-mean, unit-variance white, pink (1/f) or brown (1/f^2) Gaussian noise."""
    white = rng.standard_normal(n)
    if kind == "white" or n < 2:
        return white
    exponent = {"pink": 1.0, "brown": 2.0}[kind]
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    shaped = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    shaped -= shaped.mean()
    return shaped / max(shaped.std(), 1e-12)


@register_channel
class Noise(Channel):
    kind = "noise"
    Config = NoiseConfig
    names = "noise_{kind}_{snr}db"

    def apply(self, y, sr, rng, *, seed, sources):
        noise = colored_noise(len(y), self.config.kind, rng)
        return _scale_to_snr(y, noise, sr, self.config.snr, self.config.reference)


@dataclass(frozen=True)
class BabbleConfig:
    """``talkers`` other speakers, drawn from the caller's source signals, summed, at ``snr`` dB."""

    snr: float = 5.0
    talkers: int = 4
    reference: Reference = "active"

    def __post_init__(self):
        if self.talkers < 1:
            raise ConfigError(f"talkers must be at least 1, got {self.talkers}")


def _active_span(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` without its leading and trailing 20 ms frames more than 40 dB below its loudest one."""
    power = _frame_powers(y, sr)
    if power is None:
        return y
    frame = max(1, int(0.02 * sr))
    active = np.nonzero(_is_active(power))[0]
    return y[active[0] * frame : (active[-1] + 1) * frame] if len(active) else y


@register_channel
class Babble(Channel):
    kind = "babble"
    Config = BabbleConfig
    names = "babble_{snr}db"
    needs_sources = True

    def apply(self, y, sr, rng, *, seed, sources):
        if sources is None or len(sources) < self.config.talkers:
            have = 0 if sources is None else len(sources)
            raise ConfigError(f"channel {self.name} needs at least {self.config.talkers} source signals of other "
                              f"speakers, got {have}")
        n = len(y)
        babble = np.zeros(n, dtype=np.float64)
        for index in rng.choice(len(sources), size=self.config.talkers, replace=False):
            talker = _active_span(np.asarray(sources[int(index)], dtype=np.float64), sr)
            level = signal_level(talker, sr, "active")
            if level <= 0.0:
                continue  # a silent source adds nothing
            talker = np.roll(talker, -int(rng.integers(len(talker))))
            babble += np.resize(talker, n) / np.sqrt(level)
        return _scale_to_snr(y, babble, sr, self.config.snr, self.config.reference)


# ----------------------------------------------------------------------------- reverberation
@dataclass(frozen=True)
class ReverbConfig:
    """A shoebox room with reverberation time ``rt60`` s, one of a library of ``rooms`` (see module doc)."""

    rt60: float = 0.6
    rooms: int = 8

    def __post_init__(self):
        if not 0.1 <= self.rt60 <= 1.5:
            raise ConfigError(f"rt60 must be in [0.1, 1.5] s (the image-source cost grows with its cube), "
                             f"got {self.rt60}")
        if not 1 <= self.rooms <= 64:
            raise ConfigError(f"rooms must be in [1, 64], got {self.rooms}")


def schroeder_rt60(h: np.ndarray, sr: int, *, top_db: float = -5.0, bottom_db: float = -25.0) -> float:
    """Reverberation time of impulse response ``h``: Schroeder backward integration, the least-squares
    slope of the energy decay curve between ``top_db`` and ``bottom_db``, extrapolated to 60 dB."""
    energy = np.cumsum(np.asarray(h, dtype=np.float64)[::-1] ** 2)[::-1]
    if energy[0] <= 0.0:
        raise FeatureError("the impulse response is silent")
    edc = 10.0 * np.log10(np.maximum(energy / energy[0], 1e-300))
    lo, hi = int(np.argmax(edc <= top_db)), int(np.argmax(edc <= bottom_db))
    if hi <= lo + 1:
        raise FeatureError(f"the impulse response does not decay by {-bottom_db:g} dB")
    slope = np.polyfit(np.arange(lo, hi) / sr, edc[lo:hi], 1)[0]
    return float(-60.0 / slope)


def _room_geometry(rng: np.random.Generator, rt60: float):
    """Room size, source and microphone positions, and Sabine's absorption and image order for ``rt60``."""
    import pyroomacoustics as pra

    dims = rng.uniform([3.0, 3.0, 2.5], [8.0, 6.0, 3.5])
    for _ in range(20):
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
            break
        except ValueError:  # the room is too large for so short a decay: shrink it
            dims = dims * 0.85
    else:
        raise ConfigError(f"no room has a reverberation time of {rt60} s")
    for _ in range(1000):
        source, mic = rng.uniform(0.5, dims - 0.5), rng.uniform(0.5, dims - 0.5)
        if np.linalg.norm(source - mic) >= 1.0:
            break
    return dims, source, mic, float(absorption), int(order)


@functools.lru_cache(maxsize=64)
def room_impulse_response(rt60: float, sr: int, seed: int, room: int = 0) -> np.ndarray:
    """Impulse response of room ``room`` of the library drawn from ``seed`` (see module doc):
    read-only float32 of unit energy; its direct path is its largest sample, preceded by the
    first half of the simulation's fractional-delay filter."""
    import pyroomacoustics as pra

    dims, source, mic, absorption, order = _room_geometry(np.random.default_rng([seed, room]), rt60)
    for _ in range(5):  # Sabine is 10-40 % off in the image-source model: correct the absorption
        shoebox = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption), max_order=order,
                              air_absorption=False)
        shoebox.add_source(source)
        shoebox.add_microphone(mic)
        shoebox.compute_rir()
        h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
        ratio = schroeder_rt60(h, sr) / rt60
        if abs(ratio - 1.0) <= 0.05:
            break
        absorption = min(0.99, absorption * ratio)  # Sabine: the decay time is inverse to the absorption
        order = int(np.ceil(order * max(1.0, ratio)))
    out = (h / np.sqrt(np.sum(h**2))).astype(np.float32)
    out.flags.writeable = False  # shared by the cache
    return out


@register_channel
class Reverb(Channel):
    kind = "reverb"
    Config = ReverbConfig
    names = "reverb_{rt60}s"

    def apply(self, y, sr, rng, *, seed, sources):
        from scipy.signal import fftconvolve

        room = int(rng.integers(self.config.rooms))
        h = room_impulse_response(self.config.rt60, sr, seed, room)
        direct = int(np.argmax(np.abs(h)))
        wet = fftconvolve(np.asarray(y, dtype=np.float64), h.astype(np.float64))
        return _fit(wet[direct:], len(y))


# ----------------------------------------------------------------------------- gain
@dataclass(frozen=True)
class GainConfig:
    """A gain of ``db`` dB; samples pushed beyond full scale (+-1) are clipped."""

    db: float = 0.0

    def __post_init__(self):
        if not -120.0 <= self.db <= 120.0:
            raise ConfigError(f"db must be in [-120, 120], got {self.db}")


@register_channel
class Gain(Channel):
    kind = "gain"
    Config = GainConfig
    names = "gain_{db}db"

    def readable(self):  # a gain names its sign
        return f"gain_{self.config.db:+g}db" if self.config.db > 0 else f"gain_{_number(self.config.db)}db"

    def apply(self, y, sr, rng, *, seed, sources):
        scaled = np.asarray(y, dtype=np.float64) * 10.0 ** (self.config.db / 20.0)
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- names and specs
#: the standard conditions of the degraded-audio benchmark
STANDARD = (
    "mp3_16k", "aac_24k", "opus_12k", "telephone", "telephone_g711",
    "noise_white_20db", "noise_white_10db", "noise_white_5db",
    "noise_pink_20db", "noise_pink_10db", "noise_pink_5db",
    "noise_brown_10db", "babble_20db", "babble_10db", "babble_5db",
    "reverb_0.3s", "reverb_0.6s", "reverb_0.9s", "gain_-20db", "gain_+12db",
)


def list_channels() -> list[str]:
    """The readable names of the standard conditions (any other value of a kind can be named too)."""
    return list(STANDARD)


def list_channel_kinds() -> list[str]:
    return sorted(_REGISTRY)


def _base(head: str, text: str) -> tuple[type[Channel], dict[str, Any]]:
    """The kind and options named by the first part of a spec: a kind, a codec or a readable name."""
    if head in _REGISTRY:
        return _REGISTRY[head], {}
    if head in _CODECS:
        return Codec, {"codec": head}
    for cls in _REGISTRY.values():
        options = cls.from_readable(head)
        if options is not None:
            return cls, options
    raise ConfigError(
        f"unknown channel {text!r}; kinds: {', '.join(list_channel_kinds())} (or mp3, aac, opus); "
        f"names such as {', '.join(STANDARD[:4])}, noise_pink_5db, babble_5db, reverb_0.6s, gain_-20db"
    )


def parse_channel(text: str | Mapping[str, Any] | Channel) -> Channel:
    """The channel named by a readable name or a spec string (see module doc), or given as the
    mapping :meth:`Channel.to_dict` writes (``{"kind": "noise", "config": {"snr": 5}}``, e.g. from
    a TOML table); one-line errors."""
    if isinstance(text, Channel):
        return text
    if isinstance(text, Mapping):
        if set(text) - {"kind", "config"} or text.get("kind") not in _REGISTRY:
            raise ConfigError(f"a channel table needs 'kind' (one of {list_channel_kinds()}) and optional "
                              f"'config', got {dict(text)}")
        cls = _REGISTRY[text["kind"]]
        return cls(cfg.from_dict(cls.Config, dict(text.get("config") or {}), where=f"channel {text['kind']}"))
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a channel must be a non-empty name or spec, got {text!r}")
    head, *pairs = [p.strip() for p in text.strip().split(":")]
    cls, options = _base(head, text)
    options.update(cfg.parse_options(pairs, f"channel {text!r}"))
    return cls(cfg.from_dict(cls.Config, options, where=f"channel {text!r}"))


def applicable_channels(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The channels of ``names`` this machine can apply, in their order, and the others, each with
    the reason (:meth:`Channel.check`, e.g. a PyAV build without the encoder): a benchmark skips
    and reports those rather than measure something else under their name."""
    kept, unavailable = [], {}
    for name in names:
        try:
            parse_channel(name).check()
        except ChannelUnavailableError as exc:
            unavailable[name] = exc.reason
        else:
            kept.append(name)
    return kept, unavailable


def apply_channel(
    y: np.ndarray,
    sr: int,
    channel: str | Channel,
    *,
    seed: int = 0,
    item: int | None = None,
    sources: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """``y`` (mono, ``sr`` Hz) through ``channel``: float32, same length and alignment.

    ``seed`` draws the random parts (noise, talkers, rooms); ``item`` (optional integer, e.g.
    a hash of the clip) varies them per signal under one seed. ``sources``: the other-speaker
    signals a babble channel draws its talkers from, at ``sr`` Hz (any sequence, e.g. one that
    decodes files on demand).
    """
    ch = parse_channel(channel)
    if seed < 0 or (item is not None and item < 0):
        raise ConfigError(f"channel seed and item must be non-negative integers, got {seed}, {item}")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ConfigError(f"channels take mono signals, got an array of shape {y.shape}")
    if len(y) == 0:
        return y.copy()
    rng = np.random.default_rng(seed if item is None else [seed, item])
    out = ch.apply(y, sr, rng, seed=seed, sources=sources)
    if len(out) != len(y):  # every kind keeps the length: a bug otherwise
        raise AssertionError(f"channel {ch.name} changed the length from {len(y)} to {len(out)}")
    return np.asarray(out, dtype=np.float32)


__all__ = [
    "STANDARD", "BabbleConfig", "Channel", "ChannelUnavailableError", "CodecConfig", "GainConfig",
    "NoiseConfig", "ReverbConfig", "TelephoneConfig", "applicable_channels", "apply_channel", "colored_noise", "g711_mulaw",
    "list_channel_kinds", "list_channels", "parse_channel", "register_channel", "room_impulse_response",
    "schroeder_rt60", "signal_level",
]
