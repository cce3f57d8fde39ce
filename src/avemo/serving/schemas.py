"""The OpenAPI description of the service's requests and responses (pydantic models).

The prediction body mirrors :meth:`avemo.inference.result.Prediction.to_dict` (the JSON that
``avemo predict --format json`` prints); the endpoint returns that dict itself, and the contract
tests check every response against these schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModalityOut(BaseModel):
    used: bool = Field(description="Whether this modality contributed to the prediction.")
    reason: str | None = Field(description="Why it did not contribute (no audio track, no face...), else null.")
    probabilities: dict[str, float] | None = Field(description="This modality's own clip-level probabilities.")
    speaker_normalised: bool | None = Field(None, description="Audio of a file given a speaker (POST "
                                            "/v1/predict/batch with speaker or group_by_speaker): whether the "
                                            "model's speaker-normalised audio head gave the audio probabilities "
                                            "and the clip's probabilities, emotion and uncertain; absent otherwise.")
    speaker_clips: int | None = Field(None, description="With speaker_normalised: how many of the speaker's clips "
                                      "with usable audio the batch held (the clips its statistics came from).")


class WindowOut(BaseModel):
    start: float = Field(description="Window start, seconds.")
    end: float = Field(description="Window end, seconds.")
    emotion: str | None = Field(description="The window's emotion; null when it holds no speech and no face.")
    probabilities: dict[str, float] | None = Field(description="Probability of each emotion; null with emotion.")
    audio: bool = Field(description="The audio expert contributed to this window (it holds enough speech).")
    video: bool = Field(description="A face was found in this window and the video expert contributed.")
    speech: float | None = Field(description="Share of the window that voice-activity detection found to be "
                                 "speech (null when no VAD listened: no audio track).")
    uncertain: bool = Field(description="The top probability is below the model's threshold, the window has an "
                            "audio vote from a file with too little speech, or there is no emotion.")
    text: str | None = Field(None, description="With transcribe: the words said in this window (\"\" when none); "
                             "absent otherwise.")
    text_used: bool | None = Field(None, description="With text among the modalities: the text expert contributed "
                                   "to this window (it has words, and a voice or a face to add to), as audio and video "
                                   "say for theirs; absent otherwise.")
    crowd: float | None = Field(None, description="With a model that has a crowd detector: the probability that "
                                "several people talk at once in this window (at or above the model's threshold, "
                                "the window gets no audio vote); absent without a detector, and in the windows whose "
                                "audio it did not score: a file without an audio track, or whose track is silent or "
                                "holds no speech (its audio is not used), and windows past the end of the track.")
    crowd_gated: bool | None = Field(None, description="With crowd: whether the crowd gate took the voice out of "
                                     "this window, by its own score (at or above the threshold) or because most "
                                     "of the clip's speech is a crowd (the audio modality is then not used); "
                                     "present exactly where crowd is.")


class WordOut(BaseModel):
    text: str
    start: float = Field(description="Seconds from the start of the media.")
    end: float
    probability: float = Field(description="Mean probability of the word's tokens.")


class TranscriptOut(BaseModel):
    text: str = Field(description="What was said (\"\" when no speech was found).")
    language: str | None = Field(description="ISO 639-1 code, detected; null when nothing was said.")
    language_probability: float | None = Field(description="How sure the language detection was.")
    words: list[WordOut]


DUPLICATE_OF = ("POST /v1/predict/batch: this upload has the content of an earlier one of the batch (the same "
                "clip sent twice), at this position in the upload (0-based); it was not predicted again nor counted "
                "again toward its speaker's clips, and this item repeats that upload's (path aside); absent "
                "otherwise.")


class PredictionOut(BaseModel):
    """The result for one file: the same JSON as ``avemo predict --format json``."""

    path: str = Field(description="The uploaded file's name (its last component only).")
    duration: float | None = Field(description="Media duration in seconds (of what could be decoded, when the "
                                   "file ends before the length its header declares).")
    emotion: str | None = Field(description="The predicted clip-level emotion; null when the file holds no speech "
                                "and no face (the audio modality then says why: \"no speech\").")
    probabilities: dict[str, float] | None = Field(description="Probability of each emotion (they sum to 1); null "
                                                   "with emotion.")
    modalities: dict[str, ModalityOut]
    face_coverage: float | None = Field(description="Share of analysed frames with a face (null for audio).")
    timeline: list[WindowOut]
    model: dict[str, Any] = Field(description="Name, version and engine of the model that predicted; with a crowd "
                                  "detector also crowd_threshold (a window's crowd score at or above it: no audio "
                                  "vote).")
    warnings: list[str] = Field(description="What the file made the decoders skip (a damaged or truncated file; "
                                "the prediction covers what could be decoded), and what the abstention saw (\"too "
                                "little speech\": the answers with an audio vote are flagged uncertain; a crowd).")
    speech: float | None = Field(description="Share of the clip that is speech (null when no VAD listened).")
    uncertain: bool = Field(description="The top probability is below the model's calibrated threshold tau, the "
                            "answer has an audio vote from less speech than the model's min_speech seconds, or "
                            "there is no emotion: do not act on this answer alone.")
    transcript: TranscriptOut | None = Field(None, description="With transcribe: what was said; absent otherwise.")
    speaker: str | None = Field(None, description="POST /v1/predict/batch with speaker or group_by_speaker: the "
                                "speaker the file was given (\"speaker\" for group_by_speaker); absent for a file "
                                "given none.")
    duplicate_of: int | None = Field(None, description=DUPLICATE_OF)


class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status code, repeated.")
    code: str = Field(description="A stable machine-readable error code, e.g. upload_too_large.")
    message: str = Field(description="One line for the user, naming the file and the reason.")


class ErrorOut(BaseModel):
    """Every error response has this shape; never a stack trace."""

    error: ErrorDetail


class FileErrorOut(BaseModel):
    """A file of a batch that was not predicted: its name and the error a single upload of it would get."""

    path: str = Field(description="The uploaded file's name (its last component only).")
    error: ErrorDetail
    duplicate_of: int | None = Field(None, description=DUPLICATE_OF)


class BatchOut(BaseModel):
    """The answer of POST /v1/predict/batch: one item per uploaded file, in the order of the upload."""

    results: list[PredictionOut | FileErrorOut] = Field(
        description="Each file's prediction (the JSON of avemo predict --format json), or, for a file that could not "
        "be predicted (not audio or video: 415 unsupported_media; empty: 400 empty_file; corrupt, too long...), its "
        "name and error (a bug in one file: status 500, internal_error); the batch goes on "
        "without it (it then counts for no speaker's statistics), also when no file is left. A file sent twice (the same content) is "
        "predicted and counted once: the later copy's item repeats the first's, with duplicate_of.")


class ProgressOut(BaseModel):
    state: Literal["queued", "running", "unknown"] = Field(
        description="Waiting for a worker, being analysed, or no admitted request has this id right now."
    )
    done: float = Field(description="Seconds of media analysed so far.")
    total: float | None = Field(description="Seconds of media in all (null until known).")


class QueueOut(BaseModel):
    workers: int
    capacity: int = Field(description="Uploaded requests held at once (running + waiting); one more gets 503.")
    in_use: int
    uploading: int = Field(description="Uploads being received now (they hold no prediction slot).")
    max_uploads: int = Field(description="Uploads received at once; one more gets 503.")


class WindowLimits(BaseModel):
    default: float
    min: float
    max: float


class LimitsOut(BaseModel):
    max_upload_bytes: int
    max_duration: float = Field(description="Longest accepted media, seconds (a batch: each file, and its files "
                                "together).")
    max_batch_files: int = Field(description="The most files one POST /v1/predict/batch request may carry.")
    request_timeout: float = Field(description="Seconds before a prediction is answered with 504.")
    window: WindowLimits
    default_hop: float
    min_hop: float = Field(description="The shortest hop a request may ask for, seconds.")
    max_timeline_rows: int = Field(description="The most timeline windows an answer may hold (duration / hop).")
    upload_timeout: float = Field(description="Seconds an upload may take in all (408).")
    read_timeout: float = Field(description="Seconds an upload may send nothing (408).")
    min_upload_rate: float = Field(description="Bytes per second an upload must average once it has lasted "
                                   "read_timeout seconds (408).")


class HealthOut(BaseModel):
    status: str
    version: str = Field(description="The avemo version.")
    model: str = Field(description="Name of the loaded model.")
    model_version: str = Field(description="Its version (a checkpoint from avemo train: when it was written; \"\" "
                               "when unknown).")
    engine: str = Field(description="What runs it: torch or onnx (avemo serve --engine).")
    modalities: list[str] = Field(description="The modalities a request may ask for: those of audio and video the "
                                  "model reads (or those avemo serve --modalities names), and text when the server "
                                  "was started with the text expert (avemo serve --modalities audio,video,text).")
    queue: QueueOut
    limits: LimitsOut


class ModelOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    labels: list[str] = Field(description="The emotions the model predicts, in output order.")
    modalities: list[str] = Field(description="The modalities the model reads: audio and video for the bundled "
                                  "model, a checkpoint's inputs (e.g. audio for egemaps_logreg); text when a text "
                                  "expert is attached.")
    card: str | None = Field(description="The model card (Markdown), if the model ships one.")
    run: str | None = Field(None, description="A checkpoint's run folder, by its name (the server never shows "
                            "its paths); null for the bundled model.")
    corpora: list[str] | None = Field(None, description="The corpora a checkpoint was trained on, by name, where "
                                      "its checkpoint records them; null for the bundled model.")
    fingerprint: str | None = Field(None, description="A checkpoint's fingerprint: a hash of its weights, its "
                                    "checkpoint.json and the avemo version; null for the bundled model.")


class ModelsOut(BaseModel):
    models: list[ModelOut]


def error_responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses an endpoint can answer; ``described``
    (``s422="..."``) replaces the default description of a status."""
    descriptions = {
        404: "No such path.",
        400: "Malformed request: not multipart, truncated body, missing or empty file, client disconnected.",
        408: "The upload took longer than the server's upload timeout.",
        413: "The file is larger than the upload limit, or the media is longer than the duration limit.",
        415: "The content is not a recognised audio/video container (the bytes are checked, not the name).",
        422: "Invalid form fields, or media the decoders or the predictor cannot use (corrupt, no usable stream).",
        500: "An unexpected server error (the details are in the server log).",
        503: "Every worker is busy and the queue is full; retry after the Retry-After seconds.",
        504: "The prediction did not finish within the per-request timeout.",
    }
    descriptions.update({int(k.removeprefix("s")): v for k, v in described.items()})
    return {s: {"model": ErrorOut, "description": descriptions[s]} for s in statuses}
