"""The typed record inference returns: :class:`Prediction` (with :class:`ModalityStatus`).

``Prediction.to_dict()`` is the JSON that ``avemo predict --format json`` prints and the REST
API returns, so its shape is part of the public contract:

.. code-block:: json

    {"path": "clip.mp4", "duration": 4.0, "emotion": "happy",
     "probabilities": {"neutral": 0.02, "calm": 0.01, "happy": 0.81, ...},
     "modalities": {"audio": {"used": true, "reason": null, "probabilities": {...}},
                    "video": {"used": false, "reason": "no face detected in any frame", "probabilities": null}},
     "face_coverage": 0.0,
     "timeline": [{"start": 0.0, "end": 1.0, "emotion": null, "probabilities": null,
                   "audio": false, "video": false, "speech": 0.12, "uncertain": true},
                  {"start": 0.5, "end": 1.5, "emotion": "happy", "probabilities": {...},
                   "audio": true, "video": false, "speech": 0.9, "uncertain": false}, ...],
     "model": {"name": "avemo-default", "version": "...", "engine": "torch"},
     "warnings": [],
     "speech": 0.71, "uncertain": false}

``uncertain`` (clip and every window): the top probability is below the model's threshold ``tau``,
the answer has an audio vote from a file with less than the bundle's ``min_speech`` seconds of
speech (a warning says "too little speech"), or there is no emotion at all
(:mod:`avemo.inference.abstention`). ``speech``: the share of the clip
or window that the voice-activity detector found to be speech (null when none ran: no audio track,
or a model without VAD). A window without speech gets no audio term; a file without speech and
without a face gives ``emotion: null`` and ``probabilities: null`` (with ``uncertain: true``), and
its audio modality reads ``used: false`` with a reason saying "no speech".
With a bundle that has a crowd detector (:mod:`avemo.inference.crowd`), each window with audio also
has ``crowd``, the probability that several people talk at once there; a window at or above the
detector's threshold (``model.crowd_threshold``) gets no audio term, and when most of the speech is such windows the audio
modality reads ``used: false`` with a reason saying "several people talk at once", and no window
gets an audio term. Each window with ``crowd`` also has ``crowd_gated``: true where the crowd gate
took the voice out, by the window's own score (at or above the threshold) or, in such a clip, by the
clip's decision (a window below the threshold with enough speech to vote); false elsewhere.

With ``transcribe=True`` (:mod:`avemo.inference.transcripts`) the prediction also has
``"transcript": {"text": "Dogs are sitting by the door.", "language": "en", "language_probability": 0.99,
"words": [{"text": "Dogs", "start": 0.8, "end": 1.38, "probability": 0.98}, ...]}`` and each
window a ``"text"``: the words whose middle falls in the window ("" when none). Without it
neither key is present. With the text expert (``modalities="audio,video,text"``) each window also has
``"text_used"``: whether the text expert contributed there (its words, and a voice or a face to add
to), as ``"audio"`` and ``"video"`` say for the other experts (``"text"`` holds the words).

``warnings``: one line each about what the file made the decoders skip (a damaged middle, a
truncated end: the prediction then covers what could be decoded, and ``duration`` is its length),
what the abstention saw (too little speech; a crowd that took the voice out), and, for a file given a speaker, why it kept its single-clip result (too few clips of the speaker,
or a batch interrupted before all of the speaker's files were analysed).

Speaker-level normalisation (``Predictor.predict_many(..., speakers=)``, ``avemo predict
--group-by-speaker`` / ``--speakers CSV``; :mod:`avemo.inference.speakers`): a file given a speaker
has ``"speaker": "<id>"``, and its audio modality two more keys, ``"speaker_normalised"`` (true when
the speaker-normalised head gave the audio probabilities and the clip's fused ``probabilities``,
``emotion`` and ``uncertain``, with that head's temperature and ``tau``) and ``"speaker_clips"`` (the
number of that speaker's clips with usable audio in the batch: the clips the statistics came from).
The timeline windows always keep the single-clip head (a window's embedding is not what the
speaker-normalised head was trained on). A file given no speaker has none of these keys: its JSON is
what it was without grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: why the audio modality of a file without an audio track was not used
NO_AUDIO_TRACK = "the file has no audio track"
#: why a modality that the file has was not used: the request left it out
NOT_REQUESTED = "not requested"


@dataclass(frozen=True)
class ModalityStatus:
    """Whether a modality contributed, why not if it did not, and its own clip-level probabilities.

    ``speaker_normalised`` and ``speaker_clips`` (audio, only for a file given a speaker: see
    :mod:`avemo.inference.speakers`): whether the speaker-normalised head gave the audio
    probabilities, and how many of that speaker's clips with usable audio the batch held (the
    clips its statistics came from when normalised). None for a file given no speaker."""

    used: bool
    reason: str | None = None
    probabilities: Mapping[str, float] | None = None
    speaker_normalised: bool | None = None
    speaker_clips: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "used": self.used,
            "reason": self.reason,
            "probabilities": None if self.probabilities is None else {k: float(v) for k, v in self.probabilities.items()},
        }
        if self.speaker_normalised is not None:
            out["speaker_normalised"] = self.speaker_normalised
            out["speaker_clips"] = self.speaker_clips
        return out


@dataclass(frozen=True)
class WindowPrediction:
    """One window of the timeline."""

    start: float
    end: float
    emotion: str | None  # None: no expert had anything in this window (no speech, no face)
    probabilities: Mapping[str, float] | None
    audio: bool  # the audio expert contributed to this window
    video: bool  # a face was found in this window and the video expert contributed
    uncertain: bool = False  # top probability below tau, an audio vote on too little speech, or no emotion
    speech: float | None = None  # share of the window that is speech (None: not known)
    text: str | None = None  # the words said in the window, when the file was transcribed
    crowd: float | None = None  # the crowd detector's score (None: no detector, or no audio in the window)
    crowd_gated: bool = False  # the crowd gate took the voice out (the window's score or the clip's decision)
    text_used: bool | None = None  # the text expert contributed to this window (None: it did not run)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "start": round(float(self.start), 3),
            "end": round(float(self.end), 3),
            "emotion": self.emotion,
            "probabilities": _floats(self.probabilities),
            "audio": self.audio,
            "video": self.video,
            "speech": None if self.speech is None else round(float(self.speech), 3),
            "uncertain": self.uncertain,
        }
        if self.crowd is not None:
            out["crowd"] = round(float(self.crowd), 3)
            out["crowd_gated"] = self.crowd_gated
        if self.text is not None:
            out["text"] = self.text
        if self.text_used is not None:
            out["text_used"] = self.text_used
        return out


@dataclass(frozen=True)
class Prediction:
    """The result of predicting one file: clip label, probabilities, modalities, timeline."""

    path: str
    duration: float | None
    emotion: str | None  # None: nothing to tell an emotion from (no speech and no face)
    probabilities: Mapping[str, float] | None
    modalities: Mapping[str, ModalityStatus]
    face_coverage: float | None
    timeline: tuple[WindowPrediction, ...] = ()
    model: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what could not be decoded (see the module docstring)
    uncertain: bool = False  # top probability below tau, an audio vote on too little speech, or no emotion
    speech: float | None = None  # share of the clip that is speech (None: not known)
    transcript: Any = None  # an avemo.features.audio.asr.Transcript, when the file was transcribed
    speaker: str | None = None  # the speaker the caller said the file is of (None: not given)
    #: the emotions of the model, in output order: given by the predictor, so that a result without
    #: probabilities (a silent clip) has them too; else (a Prediction made by hand) its probabilities' keys
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.labels and self.probabilities:
            object.__setattr__(self, "labels", tuple(self.probabilities))

    def timeline_frame(self):
        """The timeline as a pandas DataFrame, one row per window: start, end, emotion, one column per
        emotion of the model (:attr:`labels`; NaN for a window without emotion, and every window of a
        silent clip), whether audio / video contributed, the speech share,
        the uncertainty flag, the window's text when the file was transcribed, whether the text expert
        contributed (``text_used``) when it ran, and, as in the CSV, the
        crowd detector's score (NaN where it scored no audio) and whether the crowd gate took the
        window's voice out."""
        import pandas as pd

        rows = []
        for w in self.timeline:
            row = {"start": w.start, "end": w.end, "emotion": w.emotion}
            row.update({k: float(v) for k, v in (w.probabilities or {}).items()})
            row.update(audio=w.audio, video=w.video, speech=w.speech, uncertain=w.uncertain, text=w.text,
                       text_used=w.text_used, crowd=w.crowd, crowd_gated=w.crowd_gated)
            rows.append(row)
        columns = ["start", "end", "emotion", *self.labels, "audio", "video", "speech", "uncertain"]
        return pd.DataFrame(rows, columns=columns + (["text"] if self.transcript is not None else [])
                            + (["text_used"] if "text" in self.modalities else []) + ["crowd", "crowd_gated"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "duration": None if self.duration is None else round(float(self.duration), 3),
            "emotion": self.emotion,
            "probabilities": _floats(self.probabilities),
            "modalities": {k: v.to_dict() for k, v in self.modalities.items()},
            "face_coverage": None if self.face_coverage is None else float(self.face_coverage),
            "timeline": [w.to_dict() for w in self.timeline],
            "model": dict(self.model),
            "warnings": list(self.warnings),
            "speech": None if self.speech is None else round(float(self.speech), 3),
            "uncertain": self.uncertain,
            **({} if self.transcript is None else {"transcript": transcript_dict(self.transcript)}),
            **({} if self.speaker is None else {"speaker": self.speaker}),
        }


def _floats(probabilities: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if probabilities is None else {k: float(v) for k, v in probabilities.items()}


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
