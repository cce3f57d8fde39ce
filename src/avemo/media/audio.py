"""Decode the audio track of any media file to mono float32 at a target rate.

Decoding is PyAV (FFmpeg); channels are averaged to mono, a loudspeaker layout (5.1, 7.1, quad...)
folded down the standard way with its LFE channel left out, except where the channels cancel each
other (see :func:`downmix`); the sample rate is converted by
libsoxr's streaming high-quality resampler (a proper anti-aliasing filter, not decimation).
Everything is streamed: :func:`iter_audio` yields fixed-size blocks and never holds the
whole track, :func:`load_audio` concatenates them for short files. A damaged file gives what can
be decoded, with a warning (:mod:`avemo.media.decode`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soxr

from avemo.errors import MediaError, MissingStreamError
from avemo.media.decode import (
    Warn,
    check_complete,
    declared_end,
    decode_stream,
    frame_to_float,
    presented_end,
    warner,
)
from avemo.media.probe import audio_stream, open_media, video_stream

DEFAULT_SAMPLE_RATE = 16000
#: a jump forward in the audio time stamps longer than this (seconds) is lost packets or a paused recording,
#: filled with silence up to the frame's time when that lies within the file (see ``_MonoResampler._gap``)
MIN_GAP_SECONDS = 0.01
#: the longest jump filled so in a file that declares no length (a longer one is a broken time stamp)
MAX_GAP_SECONDS = 10.0
#: a frame whose mix keeps less than this share of its mixed channels' mean energy (20 dB less)
#: cancels itself: channels of opposite polarity (a miswired or phase-inverted microphone);
#: uncorrelated channels keep about 1/n of it (n channels, e.g. 1/5 for 5.1 with one channel active)
CANCELLED_MIX = 0.01
#: weight of each named loudspeaker channel (FFmpeg's names) in the mono downmix: a front channel
#: -3 dB (1/sqrt 2), the centre 0 dB, a surround or back channel -6 dB, the LFE left out; see :func:`downmix_weights`
SPEAKER_WEIGHTS = {"FL": math.sqrt(0.5), "FR": math.sqrt(0.5), "FLC": math.sqrt(0.5), "FRC": math.sqrt(0.5),
                   "FC": 1.0, "BL": 0.5, "BR": 0.5, "SL": 0.5, "SR": 0.5, "BC": 0.5, "LFE": 0.0, "LFE2": 0.0}


@functools.lru_cache(maxsize=64)
def downmix_weights(channels: tuple[str, ...]) -> np.ndarray | None:
    """The weights of the named ``channels`` (FFmpeg's names, in the frame's order) in the mono mix,
    summing to 1; None where the plain average is the mix (mono, stereo, and channels that carry no
    loudspeaker name, e.g. a WAV file without a channel mask: "NONE").

    The loudspeaker layouts (2.1, quad, 5.0, 5.1, 5.1(side), 6.1, 7.1...) are folded down the standard
    way: the stereo down-mix of ITU-R BS.775-3 ("Multichannel stereophonic sound system with and
    without accompanying picture", its down-mixing equations: Lo = L + 0.7071 C + 0.7071 Ls,
    Ro = R + 0.7071 C + 0.7071 Rs) summed to mono and scaled by 0.7071, which is FFmpeg's own mono
    rematrix with its defaults (libswresample, the ffmpeg-resampler manual: ``center_mix_level`` and
    ``surround_mix_level`` -3 dB, ``lfe_mix_level`` 0): L and R at 1/sqrt 2, C at 1, each surround or
    back channel at 1/2, the LFE channel (effects, an engine's rumble, a hum) left out. The averaging
    used before gave the LFE channel as much weight as the voice in the centre.
    """
    if len(channels) <= 1 or any(name not in SPEAKER_WEIGHTS for name in channels):
        return None
    weights = np.array([SPEAKER_WEIGHTS[name] for name in channels], dtype=np.float32)
    if weights.sum() <= 0 or np.all(weights == weights[0]):
        return None
    return weights / weights.sum()


def downmix(samples: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """``(mono, cancelled)`` of a (samples, channels) frame: the channels' mix (``weights``, from
    :func:`downmix_weights`; None: their average), or, where that mix cancels (:data:`CANCELLED_MIX`:
    the same voice in opposite polarity, whose average is near silence; it was reported as "the audio
    track is silent"), the loudest of the mixed channels alone."""
    if samples.shape[1] == 1:
        return samples[:, 0], False
    mono = samples.mean(axis=1) if weights is None else samples @ weights
    energy = np.square(samples, dtype=np.float64).mean(axis=0)  # per channel
    if weights is not None:
        energy = np.where(weights > 0, energy, 0.0)  # the LFE channel is not a candidate
    mean = energy.sum() / (samples.shape[1] if weights is None else np.count_nonzero(weights))
    if mean > 0 and np.square(mono, dtype=np.float64).mean() < CANCELLED_MIX * mean:
        return samples[:, int(np.argmax(energy))], True
    return mono, False


class _Blocks:
    """Cut a stream of output samples to ``[first, last)`` and hand them out in blocks of ``size``.

    ``position`` is the index (at the output rate) of the next sample fed; the first chunk's is set
    by the caller from the first decoded frame's time stamp.
    """

    def __init__(self, first: int, last: int | None, size: int):
        self.first, self.last, self.size = first, last, size
        self.position: int | None = None
        self.done = False  # ``last`` reached: decode no more
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def cap(self, end: int) -> None:
        """End at output index ``end`` at the latest (where the stream's presentation ends)."""
        self.last = end if self.last is None else min(self.last, end)

    def begin(self, position: int, min_lead: int, max_lead: int) -> Iterator[np.ndarray]:
        """Start at output index ``position``, the first decoded sample's. A stream that starts more than
        ``min_lead`` samples after ``first`` (an audio track that begins later than the video: a recorder
        that joined late) is preceded by silence up to ``position``, if that is at most ``max_lead``
        samples (a larger jump is a broken time stamp), so its samples keep their times: they used to be
        moved to the start of the file."""
        lead = position - self.first
        if not min_lead < lead <= max_lead:
            self.position = position
            return
        self.position = self.first
        for lo in range(0, lead, self.size):  # block by block: a long lead-in is never held whole
            yield from self.feed(np.zeros(min(self.size, lead - lo), dtype=np.float32))
            if self.done:
                return

    def feed(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        if chunk.size == 0:
            return
        lo, hi = self.position, self.position + chunk.shape[0]
        self.position = hi
        a = max(lo, self.first)
        b = hi if self.last is None else min(hi, self.last)
        if b > a:
            self._pending.append(chunk[a - lo : b - lo])
            self._pending_n += b - a
        if self.last is not None and hi >= self.last:
            self.done = True
        while self._pending_n >= self.size:
            buf = np.concatenate(self._pending)
            yield buf[: self.size]
            rest = buf[self.size :]
            self._pending = [rest] if rest.shape[0] else []
            self._pending_n = rest.shape[0]

    def rest(self) -> Iterator[np.ndarray]:
        if self._pending_n:
            yield np.concatenate(self._pending)


class _MonoResampler:
    """Decoded frames -> mono float32 at ``sr``, output sample ``m`` at exactly ``m / sr`` s.

    Resampling (libsoxr, streaming, high quality) starts on an input sample that lies on the output
    grid, so a decode that seeks (``start > 0``) yields the same samples as a decode from the
    beginning. Where packets were lost (skipped as undecodable) or the recording paused (a screen
    recorder's gap), the gap their time stamps show is filled with silence, block by block, so that what
    follows stays at its time (``horizon``: the file's declared length in seconds, None if unknown).
    """

    def __init__(self, sr: int, origin: float, path: Path, horizon: float | None = None):
        self.sr, self.origin, self.path, self.horizon = sr, origin, path, horizon
        self.in_rate: int | None = None
        self.start_position: int | None = None  # output index of the first sample
        self._resampler: soxr.ResampleStream | None = None
        self._skip = 0  # input samples still to drop to reach the output grid
        self._next_in = 0  # input index the next frame should start at
        self.cancelled = 0  # input samples whose channels cancelled each other (one channel used, see downmix)
        self._layout: tuple[str, np.ndarray | None] = ("", None)  # (layout name, its downmix weights)

    def _weights(self, layout) -> np.ndarray | None:
        """The :func:`downmix_weights` of a frame's channel ``layout`` (looked up once per layout)."""
        if layout.name != self._layout[0]:
            self._layout = (layout.name, downmix_weights(tuple(c.name for c in layout.channels)))
        return self._layout[1]

    def _input_index(self, frame) -> int | None:
        return None if frame.time is None else int(round((float(frame.time) - self.origin) * self.in_rate))

    def _gap(self, frame) -> int:
        """Input samples of silence due before this frame: how far its time stamp lies after the samples
        so far, where that is more than MIN_GAP_SECONDS and the frame starts within the file's declared
        length (a time stamp past it is broken, not a pause; without a length: a jump of at most
        MAX_GAP_SECONDS). A pause of more than 10 s (a screen recording's) was not filled: the audio
        after it moved that much earlier than its video, and the file was called truncated."""
        index = self._input_index(frame)
        gap = 0 if index is None else index - self._next_in
        if self.horizon is None:
            within = gap <= MAX_GAP_SECONDS * self.in_rate
        else:
            within = index is not None and index <= self.horizon * self.in_rate
        return gap if gap > MIN_GAP_SECONDS * self.in_rate and within else 0

    def _start(self, frame, stream_rate: int) -> None:
        self.in_rate = frame.sample_rate or stream_rate
        first_in = self._input_index(frame) or 0
        self._next_in = first_in
        if self.in_rate != self.sr:
            self._skip = (-first_in) % (self.in_rate // math.gcd(self.in_rate, self.sr))
            first_in += self._skip
            self._resampler = soxr.ResampleStream(self.in_rate, self.sr, 1, dtype="float32", quality="HQ")
        self.start_position = int(round(first_in * self.sr / self.in_rate))

    def push(self, frame, stream_rate: int) -> Iterator[np.ndarray]:
        """This frame's output samples, after the silence of a gap before it, in blocks of at most
        MAX_GAP_SECONDS (possibly none yet: the resampler has a delay)."""
        samples = frame_to_float(frame)
        if samples.shape[0] == 0:
            return
        if not np.isfinite(samples).all():
            raise MediaError("the audio track holds NaN or infinite samples (a broken float encoder?)", self.path)
        mono, cancelled = downmix(samples, self._weights(frame.layout))
        self.cancelled += samples.shape[0] if cancelled else 0
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self.in_rate is None:
            self._start(frame, stream_rate)
        elif frame.sample_rate and frame.sample_rate != self.in_rate:
            raise MediaError(f"audio sample rate changes mid-stream ({self.in_rate} -> {frame.sample_rate} Hz)",
                             self.path)
        else:
            gap, block = self._gap(frame), int(MAX_GAP_SECONDS * self.in_rate)
            for lo in range(0, gap, block):  # a long pause is never held whole
                yield self._resampled(np.zeros(min(block, gap - lo), dtype=np.float32))
        yield self._resampled(mono)

    def _resampled(self, mono: np.ndarray) -> np.ndarray:
        """Input samples that follow the last ones -> output samples."""
        self._next_in += mono.shape[0]
        if self._skip:
            dropped = min(self._skip, mono.shape[0])
            mono, self._skip = mono[dropped:], self._skip - dropped
        if self._resampler is None or mono.shape[0] == 0:
            return mono
        return self._resampler.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _seek(container, stream, start: float, origin: float, rate: int) -> None:
    """Seek a little before ``start``, where time stamps resolve single samples (not FLV /
    Matroska's 1 ms): the position of the first decoded sample is taken from its time stamp."""
    if start > 1.0 and stream.time_base and rate and float(stream.time_base) <= 1.0 / rate:
        target = int((start - 1.0 + origin) / float(stream.time_base))
        container.seek(max(0, target), stream=stream, backward=True)


def iter_audio(
    path: str | Path,
    sr: int = DEFAULT_SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
    block_seconds: float = 10.0,
    warn: Warn | None = None,
) -> Iterator[np.ndarray]:
    """Yield the mono audio of ``path`` at ``sr`` Hz in blocks of ``block_seconds`` (last one shorter).

    ``start``/``duration`` (seconds from the container's start) select a segment; decoding
    seeks close to ``start`` and the samples equal the same slice of a full decode. The track ends
    where an MP4's edit list ends it, without the AAC encoder's padding (:func:`~avemo.media.decode.presented_end`).
    Raises MissingStreamError when the file has no audio track and MediaError when its samples
    hold NaN or infinite values. A damaged file gives what can be decoded: skipped packets, and a
    stream that stops well before the length its header declares (a truncated file), are told to
    ``warn`` (default: logged; see :mod:`avemo.media.decode`).
    """
    path = Path(path)
    if sr <= 0:
        raise ValueError("sample rate must be positive")
    first = int(round(start * sr))
    blocks = _Blocks(first, None if duration is None else first + int(round(duration * sr)),
                     max(1, int(round(block_seconds * sr))))
    with open_media(path) as container:
        stream = audio_stream(container)
        if stream is None:
            raise MissingStreamError("has no audio track", path, stream="audio")
        stream.thread_type = "AUTO"
        # times count from the container's start (an mp3's first timestamp is its encoder delay)
        origin = container.start_time / av.time_base if container.start_time is not None else 0.0
        rate = stream.rate or stream.codec_context.sample_rate or 0
        end = presented_end(container, stream, origin)  # an MP4's edit list: not the encoder's padding
        if end is not None:
            blocks.cap(int(round(end * sr)))
        _seek(container, stream, start, origin, rate)
        length = container.duration / av.time_base if container.duration else None
        mono = _MonoResampler(sr, origin, path, length)
        max_lead = MAX_GAP_SECONDS if length is None else length  # within the file
        for frame in decode_stream(container, stream, path, warn, "audio", lambda: [video_stream(container)]):
            for out in mono.push(frame, rate):
                if blocks.position is None and mono.start_position is not None:
                    yield from blocks.begin(mono.start_position, int(MIN_GAP_SECONDS * sr), int(max_lead * sr))
                yield from blocks.feed(out)
                if blocks.done:
                    break
            if blocks.done:
                break
        if not blocks.done and blocks.position is not None:
            yield from blocks.feed(mono.flush())
            if not blocks.done:
                check_complete(declared_end(container, stream, origin), blocks.position / sr, warner(path, warn),
                               "audio")
        if mono.cancelled:
            warner(path, warn)("the audio channels cancel each other when averaged (opposite polarity?): the "
                               f"loudest channel was used instead ({mono.cancelled / mono.in_rate:.1f} s)")
        yield from blocks.rest()


def load_audio(
    path: str | Path,
    sr: int = DEFAULT_SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
    warn: Warn | None = None,
) -> np.ndarray:
    """The mono float32 audio of ``path`` at ``sr`` Hz (optionally a segment; ``warn``: see :func:`iter_audio`).

    Raises MissingStreamError if there is no audio track and MediaError if it holds no samples.
    """
    blocks = list(iter_audio(path, sr, start=start, duration=duration, block_seconds=60.0, warn=warn))
    if not blocks:
        if start > 0:
            raise MediaError(f"holds no audio after {start:.2f} s", path)
        raise MediaError("the audio track holds no samples", path)
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
