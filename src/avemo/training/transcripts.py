"""Transcripts by speech recognition for clips that have none (``--transcribe`` of ``avemo train``,
``evaluate`` and ``extract``; ``transcribe = true`` in a ``--corpora`` entry).

Where a transcript comes from is the reader's business: IEMOCAP's transcriptions, MELD's
``Utterance`` column, a ``text`` column in a folder's labels CSV. A corpus without any (RAVDESS,
CREMA-D, EmoDB, a folder without a ``text`` column) gets one here, from offline Whisper-base
(:func:`avemo.features.audio.asr.transcribe_file`, the recogniser of ``avemo predict --transcribe``),
so that a text or audio+text model can train and be scored on it.

* **Which clips.** Per take (the files of one performance): a take none of whose files carries a
  text is transcribed once, from the file with the fewest streams that has audio (RAVDESS's
  audio-only file before its audio-video file), and the transcript goes to every file of the
  take that has audio. A take that has a transcript keeps it: reader text is never replaced.
* **The cache.** A transcript is stored in the feature cache (``--cache``, default
  ``~/.cache/avemo/features``) like a feature: keyed by the file's content digest and the
  recogniser's name, version and settings (:func:`recogniser_spec`), written atomically; a second
  run reads it instead of transcribing again. What the audio decoder repaired or cut short while the
  transcript was made (a truncated WAV file: the transcript is of the part that decoded) is stored
  with it: the run that transcribes warns per file, a run that reads such transcripts from the
  cache says so in one line (how many, the first few files). Entries written before the warnings
  were stored count as without them.
* **No speech.** A file in which the recogniser finds no speech has an empty transcript (as in
  ``avemo predict --transcribe``). The clip then carries no text, as a MELD row with empty text and a
  media file, or a folder row with an empty ``text``: audio and video models use it as before, a
  text model leaves its take out and lists it ("has no text: speech recognition found no speech
  in it"); a model that needs text does not train on an empty string. The clip's
  ``fields["text_source"]`` is ``"asr"`` whether or not speech was found.
* **Bad audio.** A file whose audio cannot be decoded is skipped, with the reason, in the
  :class:`~avemo.datasets.scan.ScanResult`'s ``skipped`` like the reader's own skips. Missing
  Whisper weights, or a cache that cannot be written (a full disk), stop the run with one line:
  no file is to blame, and skipping each would leave a run on what happened to be cached.
* **No audio track.** A file taken for one with audio (a folder's ``.mp4``) that has none is no
  take without speech: it keeps its clip, unchanged and without text (its video is still of use),
  the take's next file is tried, and it is counted apart (``no_audio``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avemo.cache.store import FeatureCache
from avemo.datasets.records import Clip
from avemo.datasets.scan import ScanResult, Skipped
from avemo.datasets.text import normalise_text
from avemo.errors import AvemoError, CacheError, CheckpointError

log = logging.getLogger(__name__)

#: :attr:`Clip.fields` key saying where the clip's text came from
SOURCE_FIELD = "text_source"
#: its value for a transcript made here
SOURCE = "asr"
#: the recogniser's name in cache keys and run records
RECOGNISER = "whisper_base_ctranslate2"
#: bump when a cached transcript of the same file and settings would differ
VERSION = 1
#: settings of :class:`~avemo.features.audio.asr.TranscribeConfig` that do not change the text
_NOT_IN_KEY = ("threads",)
_ARRAY = "transcript"

#: progress(takes done, takes to transcribe)
Progress = Callable[[int, int], None]


@dataclass
class Transcribed:
    """What :func:`transcribe_clips` did: the clips (with transcripts, without the skipped ones),
    the skipped files, the warnings of the audio decoder, and counts of takes."""

    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # files whose cached transcript came with decoder warnings
    transcribed: int = 0  # takes transcribed now
    cached: int = 0  # takes whose transcript was in the cache
    no_speech: int = 0  # takes in which no speech was found (no text)
    no_audio: int = 0  # files without an audio track (kept, without text)

    def summary(self) -> dict[str, Any]:
        """The record of a run (``checkpoint.json``'s ``data.transcripts``, evaluate's JSON)."""
        return {"source": SOURCE, "recogniser": RECOGNISER, "version": VERSION, "transcribed": self.transcribed,
                "cached": self.cached, "no_speech": self.no_speech, "skipped": len(self.skipped),
                **({"no_audio": self.no_audio} if self.no_audio else {})}


def recogniser_spec(config=None) -> dict[str, Any]:
    """The cache spec of a transcript: the recogniser, its version and the settings that change its text."""
    from avemo import config as cfg
    from avemo.features.audio.asr import TranscribeConfig

    settings = cfg.to_dict(config or TranscribeConfig())
    return {"name": RECOGNISER, "version": VERSION,
            "config": {k: v for k, v in settings.items() if k not in _NOT_IN_KEY}}


def file_transcript(path, cache, config=None, warn: Callable[[str], None] | None = None,
                    cached_warnings: Callable[[list[str]], None] | None = None) -> tuple[str, bool]:
    """The normalised transcript of a media file ("" without speech) and whether it came from ``cache``.

    ``warn``: each line of the audio decoder while the file is transcribed (stored with the transcript);
    ``cached_warnings``: on a cache hit, those stored lines (not called when there are none).
    Raises the recogniser's one-line error for a file whose audio cannot be decoded."""
    from avemo.digest import file_digest
    from avemo.features.audio import asr

    spec = recogniser_spec(config)
    key = cache.key(file_digest(path), spec)
    hit = cache.get(key)
    if hit is not None and _ARRAY in hit:
        stored = json.loads(bytes(hit[_ARRAY].astype(np.uint8)).decode("utf-8"))
        if stored.get("warnings") and cached_warnings is not None:
            cached_warnings(list(stored["warnings"]))
        return stored["text"], True
    from avemo.media.decode import warner

    said: list[str] = []
    report = warner(path, warn)  # without ``warn``: logged, as the recogniser does

    def collect(line: str) -> None:
        said.append(line)
        report(line)

    transcript = asr.transcribe_file(path, config=config, warn=collect)
    text = normalise_text(transcript.text)
    record = json.dumps({"text": text, "language": transcript.language,
                         **({"warnings": said} if said else {})}).encode("utf-8")
    cache.put(key, {_ARRAY: np.frombuffer(record, dtype=np.uint8)}, spec)
    return text, False


def with_transcript(clip: Clip, text: str) -> Clip:
    """``clip`` with an ASR transcript: the text modality when ``text`` is not empty (see the module doc)."""
    fields = {**clip.fields, SOURCE_FIELD: SOURCE}
    if not text:
        return dataclasses.replace(clip, fields=fields)
    return dataclasses.replace(clip, text=text, modalities=(*clip.modalities, "text"), fields=fields)


def _untranscribed_takes(clips: Sequence[Clip], select: Callable[[Clip], bool] | None) -> dict[str, list[int]]:
    """take key -> the indices of its clips with audio (and ``select``-ed), for the takes none of whose
    clips has text; the clips of a take ordered by their count of streams (an audio-only file first:
    cheaper to decode)."""
    with_text = {c.take_key for c in clips if c.text is not None}
    takes: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        if clip.has("audio") and clip.take_key not in with_text and (select is None or select(clip)):
            takes.setdefault(clip.take_key, []).append(i)
    return {key: sorted(rows, key=lambda i: len(clips[i].modalities)) for key, rows in takes.items()}


def transcribe_clips(clips: Sequence[Clip], *, cache=None, config=None, progress: Progress | None = None,
                     select: Callable[[Clip], bool] | None = None) -> Transcribed:
    """Give every take without a transcript one by speech recognition (see the module doc).

    ``cache``: a :class:`~avemo.cache.FeatureCache` (default: the default feature cache);
    ``config``: a :class:`~avemo.features.audio.asr.TranscribeConfig` (default: its defaults, the
    language detected per file); ``progress(done, total)`` after each take; ``select``: only the
    clips it accepts are transcribed (those a run will use), the others are returned unchanged."""
    cache = cache if cache is not None else FeatureCache()
    takes = _untranscribed_takes(clips, select)
    out = Transcribed(list(clips))
    dropped: set[int] = set()
    silent: set[int] = set()  # no audio track: kept as they are
    for done, rows in enumerate(takes.values(), 1):
        text = None
        for i in rows:  # the next file of the take when one cannot be decoded or has no audio track
            try:
                text, cached = file_transcript(clips[i].path, cache, config,
                                               warn=lambda m, p=clips[i].path: out.warnings.append(f"{p}: {m}"),
                                               cached_warnings=lambda _, p=clips[i].path: out.damaged.append(str(p)))
            except (CheckpointError, CacheError):
                raise  # no recogniser (missing weights), a cache that cannot be written (a full disk): every file would fail
            except AvemoError as exc:
                out.skipped.append(Skipped(clips[i].path, f"cannot be transcribed: {exc.reason}"))
                dropped.add(i)
                continue
            if not text and not _has_audio_track(clips[i].path):
                out.no_audio += 1
                silent.add(i)
                text = None
                continue
            out.cached += cached
            out.transcribed += not cached
            out.no_speech += not text
            break
        for i in rows:
            if text is not None and i not in dropped | silent:
                out.clips[i] = with_transcript(clips[i], text)
        if progress is not None:
            progress(done, len(takes))
    out.clips = [c for i, c in enumerate(out.clips) if i not in dropped]
    if out.damaged:  # said per file when they were transcribed; one line now
        from avemo.cache.store import said_of_cached

        out.warnings.append(said_of_cached(out.damaged, "{n} transcript(s) from the cache were", "audio",
                                           "the text is of what decoded"))
    return out


def _has_audio_track(path) -> bool:
    """Whether a file whose transcript is empty has an audio track at all (the recogniser takes a file
    without one for one without speech); True when the probe cannot tell."""
    from avemo.media import probe

    try:
        return probe(path).has_audio
    except AvemoError:
        return True


def transcribe_missing(scan: ScanResult, *, cache=None, config=None, progress: Progress | None = None,
                       select: Callable[[Clip], bool] | None = None) -> ScanResult:
    """A reader's :class:`ScanResult` with transcripts for its takes that have none (:func:`transcribe_clips`):
    the files that cannot be transcribed join ``skipped``; ``transcripts`` records the counts."""
    done = transcribe_clips(scan.clips, cache=cache, config=config, progress=progress, select=select)
    warnings = [*scan.warnings, *done.warnings]
    if done.no_speech:
        warnings.append(f"{done.no_speech} take(s) without speech (empty transcript): they carry no text, "
                        "and a text model leaves them out")
    for line in warnings[len(scan.warnings):]:
        log.warning(line)
    return dataclasses.replace(scan, clips=done.clips, skipped=[*scan.skipped, *done.skipped], warnings=warnings,
                               transcripts=done.summary())


def reads_text(inputs: Mapping[str, Any]) -> bool:
    """Whether a model of these inputs (name -> :class:`~avemo.models.inputs.InputSpec`) reads text:
    only then are transcripts worth making (``--transcribe`` for a model without a text input would
    spend the recogniser's time, about half a second a clip on a CPU, on text nobody reads)."""
    return any(spec.modality == "text" for spec in inputs.values())


def transcript_source(clips_or_take) -> str | None:
    """``"asr"`` when one of the clips' text was (or was to be) made by speech recognition, else None."""
    return next((SOURCE for c in clips_or_take if c.fields.get(SOURCE_FIELD) == SOURCE), None)
