"""Transcripts in predictions: speech recognition in a thread next to the experts.

``Predictor.predict(path, transcribe=True)`` (``avemo predict --transcribe``, the REST field
``transcribe=true``) starts :class:`Transcription` before the experts: offline Whisper-base
(:func:`avemo.features.audio.asr.transcribe_file`, CTranslate2 behind Silero VAD) decodes the
audio track in a thread of its own while the audio and video experts run (CTranslate2 releases
the GIL). The prediction then carries the clip's transcript, and each timeline window the words
whose middle falls in it (:meth:`~avemo.features.audio.asr.Transcript.between`).

A file without speech (or without an audio track) gives an empty transcript, never an error; a
track that the recogniser cannot decode gives an empty transcript and a warning in the
prediction's ``warnings``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from avemo.errors import AvemoError
from avemo.inference.backends import _Cancelled, _ExpertThread


class Transcription:
    """Speech recognition of ``path`` running in a thread from construction on; :meth:`result` waits for it.

    ``progress(seconds)``, when given, is called from that thread after each decoded chunk with the
    seconds of the track done, and with ``total`` once the transcript is complete (the silence after
    the last chunk needs no decoding): the prediction reports the slower of the experts and the
    recogniser, which on a long file is often the recogniser."""

    def __init__(self, path: str | Path, language: str | None = None,
                 progress: Callable[[float], None] | None = None, total: float = 0.0, *,
                 decoding_reported: bool = False):
        from avemo.features.audio.asr import transcribe_file

        self._cancelled = threading.Event()
        self._progress = progress
        # what the decoder skipped or repaired in the track: said by :meth:`result`, unless the audio
        # expert decodes the same track and reports it (``decoding_reported``): said once either way
        self._decoding: list[str] = []
        self._decoding_reported = decoding_reported

        def run():
            transcript = transcribe_file(path, language=language, progress=self._check, warn=self._decoding.append)
            if progress is not None:
                progress(total)
            return transcript

        self._thread = _ExpertThread(run)

    def _check(self, seconds: float) -> None:
        if self._cancelled.is_set():
            raise _Cancelled()
        if self._progress is not None:
            self._progress(seconds)

    def result(self, warn: Callable[[str], None]):
        """The :class:`~avemo.features.audio.asr.Transcript`; an empty one, and ``warn(why)``, when the
        recogniser failed on this file (a damaged audio track, missing weights)."""
        from avemo.features.audio.asr import Transcript

        try:
            transcript = self._thread.result()
        except AvemoError as exc:
            warn(f"no transcript: {exc.reason}")
            return Transcript()
        for message in [] if self._decoding_reported else self._decoding:
            warn(message)
        return transcript

    def cancel(self) -> None:
        """Stop at the next chunk and wait until the thread has ended (the prediction was abandoned)."""
        self._cancelled.set()
        self._thread.finish()



def load_recogniser_now() -> None:
    """Load the speech recogniser that :class:`Transcription` uses, so that missing weights stop a
    command or a server at its start with one line, instead of a warning on every file."""
    from avemo.features.audio.asr import TranscribeConfig, load_recogniser

    config = TranscribeConfig()
    load_recogniser(config.compute_type, config.threads)
