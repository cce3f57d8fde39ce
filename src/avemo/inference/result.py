"""The typed record inference returns: :class:`Prediction` (with :class:`ModalityStatus`).

``Prediction.to_dict()`` is the JSON that ``avemo predict --format json`` prints and the REST
API returns, so its shape is part of the public contract:

.. code-block:: json

    {"path": "clip.mp4", "duration": 4.0, "emotion": "happy",
     "probabilities": {"neutral": 0.02, "calm": 0.01, "happy": 0.81, ...},
     "modalities": {"audio": {"used": true, "reason": null, "probabilities": {...}},
                    "video": {"used": false, "reason": "no face detected in any frame", "probabilities": null}},
     "face_coverage": 0.0,
     "timeline": [{"start": 0.0, "end": 1.0, "emotion": "happy", "probabilities": {...},
                   "audio": true, "video": false}, ...],
     "model": {"name": "avemo-default", "version": "...", "engine": "torch"},
     "warnings": []}

With ``transcribe=True`` (:mod:`avemo.inference.transcripts`) the prediction also has
``"transcript": {"text": "Dogs are sitting by the door.", "language": "en", "language_probability": 0.99,
"words": [{"text": "Dogs", "start": 0.8, "end": 1.38, "probability": 0.98}, ...]}`` and each
window a ``"text"``: the words whose middle falls in the window ("" when none). Without it
neither key is present.

``warnings``: one line each about what the file made the decoders skip (a damaged middle, a
truncated end: the prediction then covers what could be decoded, and ``duration`` is its length).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModalityStatus:
    """Whether a modality contributed, why not if it did not, and its own clip-level probabilities."""

    used: bool
    reason: str | None = None
    probabilities: Mapping[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "reason": self.reason,
            "probabilities": None if self.probabilities is None else {k: float(v) for k, v in self.probabilities.items()},
        }


@dataclass(frozen=True)
class WindowPrediction:
    """One window of the timeline."""

    start: float
    end: float
    emotion: str
    probabilities: Mapping[str, float]
    audio: bool  # the audio expert contributed to this window
    video: bool  # a face was found in this window and the video expert contributed
    text: str | None = None  # the words said in the window, when the file was transcribed

    def to_dict(self) -> dict[str, Any]:
        out = {
            "start": round(float(self.start), 3),
            "end": round(float(self.end), 3),
            "emotion": self.emotion,
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "audio": self.audio,
            "video": self.video,
        }
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class Prediction:
    """The result of predicting one file: clip label, probabilities, modalities, timeline."""

    path: str
    duration: float | None
    emotion: str
    probabilities: Mapping[str, float]
    modalities: Mapping[str, ModalityStatus]
    face_coverage: float | None
    timeline: tuple[WindowPrediction, ...] = ()
    model: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what could not be decoded (see the module docstring)
    transcript: Any = None  # an avemo.features.audio.asr.Transcript, when the file was transcribed

    @property
    def labels(self) -> list[str]:
        return list(self.probabilities)

    def timeline_frame(self):
        """The timeline as a pandas DataFrame, one row per window: start, end, emotion, one column per
        emotion, whether audio / video contributed, and the window's text when the file was transcribed."""
        import pandas as pd

        rows = []
        for w in self.timeline:
            row = {"start": w.start, "end": w.end, "emotion": w.emotion}
            row.update({k: float(v) for k, v in w.probabilities.items()})
            row.update(audio=w.audio, video=w.video, text=w.text)
            rows.append(row)
        columns = ["start", "end", "emotion", *self.labels, "audio", "video"]
        return pd.DataFrame(rows, columns=columns + (["text"] if self.transcript is not None else []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "duration": None if self.duration is None else round(float(self.duration), 3),
            "emotion": self.emotion,
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "modalities": {k: v.to_dict() for k, v in self.modalities.items()},
            "face_coverage": None if self.face_coverage is None else float(self.face_coverage),
            "timeline": [w.to_dict() for w in self.timeline],
            "model": dict(self.model),
            "warnings": list(self.warnings),
            **({} if self.transcript is None else {"transcript": transcript_dict(self.transcript)}),
        }


def transcript_dict(transcript) -> dict[str, Any]:
    """The ``transcript`` object of a prediction's JSON: text, language (ISO 639-1, null when
    nothing was said), how sure the language detection was (null when the language was given),
    and the words with their times (seconds) and probabilities."""
    probability = transcript.language_probability
    return {
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": None if probability is None else round(float(probability), 4),
        "words": [w.to_dict() for w in transcript.words],
    }
