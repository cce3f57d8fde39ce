"""``POST /v1/predict/batch``: several files in one request, optionally grouped by speaker.

Speaker-level normalisation (:mod:`avemo.inference.speakers`) judges each clip's voice against the
speaker's other clips, so the clips must arrive together: this endpoint is the REST form of
``avemo predict FILES --group-by-speaker`` / ``--speakers CSV``. The form carries 1 to
``max_batch_files`` ``file`` parts and, optionally,

* ``speaker`` fields, one per file in the order of the files (the n-th ``speaker`` is the speaker
  of the n-th ``file``, wherever the parts stand; an empty one: that file has no speaker), or
* ``group_by_speaker=true``: all the files are clips of one speaker (its id is ``"speaker"``, as the
  CLI's),

and ``window``, ``hop``, ``modalities``, ``transcribe`` as ``POST /v1/predict`` (no
``progress_id``). The answer is ``{"results": [...]}``, one item per file in the order of the
upload: the file's prediction, the JSON of ``avemo predict --format json`` (with ``speaker``,
``modalities.audio.speaker_normalised`` and ``speaker_clips`` for a file given a speaker), or
``{"path": name, "error": {"status", "code", "message"}}`` for a file that could not be predicted
(not audio or video, which :mod:`~avemo.serving.uploads` refused as it came in without keeping
it; empty, unreadable, too long, no usable input...): the error a single upload of it would get,
and the batch goes on without it (all files refused: 200 with error items only); a file that fails on a bug gets 500 ``internal_error`` (the details go to
the server log) and the batch goes on too. An upload whose content is that of an earlier one (the
same clip sent twice) is predicted once and counted once toward its speaker's ``min_clips``: its
item repeats the first copy's, with ``duplicate_of``, the first copy's position (0-based); two
copies given different speakers are refused (422).

A batch goes through the steps of ``/v1/predict`` (:mod:`avemo.serving.app`: the upload gate, the
streamed, size-limited and sniffed upload, one prediction slot, ``request_timeout``) and costs the
server at most what one ``/v1/predict`` may: its files together are at most ``max_upload_bytes``
and, once checked, ``max_duration`` seconds (else 413 for the whole request).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from avemo.errors import ConfigError
from avemo.inference.speakers import GROUP_SPEAKER, content_copies
from avemo.inference.text import TEXT
from avemo.serving.options import PredictOptions, check_timeline, read_flag
from avemo.serving.responses import ApiError, error_body
from avemo.serving.settings import ServeSettings
from avemo.serving.uploads import FORM_FIELDS, Form, Upload, check_media

log = logging.getLogger(__name__)

#: the form fields of a batch besides ``file``
BATCH_FIELDS = (*(f for f in FORM_FIELDS if f != "progress_id"), "speaker", "group_by_speaker")


def parse_speakers(form: Form, options: PredictOptions, predictor: Any) -> list[str | None] | None:
    """The speaker of each file of ``form`` (None: no grouping asked for); 422 for a bad ``speaker`` /
    ``group_by_speaker`` field, or a model that cannot group (``speaker_grouping_unavailable``)."""
    group = read_flag(form, "group_by_speaker", {})
    given = form.fields.get("speaker")
    if group and given:
        raise ApiError(422, "invalid_field", "group_by_speaker and speaker exclude each other: one says all files are "
                       "one speaker, the other says who is who")
    if group:
        speakers: list[str | None] = [GROUP_SPEAKER] * len(form.files)
    elif given:
        if len(given) != len(form.files):
            raise ApiError(422, "invalid_field", f"send one speaker field per file, in the order of the files "
                           f"({len(form.files)} files, {len(given)} speaker fields; an empty one: no speaker)")
        speakers = [_speaker_id(v) for v in given]
    else:
        return None
    if all(s is None for s in speakers):
        return None
    if TEXT in options.modalities:
        raise ApiError(422, "invalid_field", "speaker grouping re-fuses the audio and video of each clip; it does not "
                       "combine with the text modality")
    try:
        predictor.check_speakers(options.modalities)
    except ConfigError as exc:
        raise ApiError(422, "speaker_grouping_unavailable", exc.reason) from None
    return speakers


def _speaker_id(value: str) -> str | None:
    value = value.strip()
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise ApiError(422, "invalid_field", "a speaker field holds control characters")
    return value or None


def file_error(upload: Upload, error: ApiError) -> dict[str, Any]:
    """The item of a file that was not predicted: its name and the error a single upload would get."""
    return {"path": upload.filename, **error_body(error.status, error.code, error.message)}


def run_batch(predictor: Any, form: Form, options: PredictOptions, speakers: Sequence[str | None] | None,
              settings: ServeSettings, default_hop: float, error_code) -> dict[str, Any]:
    """In a worker thread: set aside the uploads that repeat an earlier one (:func:`duplicates`),
    check each other file as ``/v1/predict`` does (its failures become items), the
    batch's total length (413), then predict the files that passed in one ``predict_many`` (grouped by
    ``speakers``); ``error_code``: an AvemoError -> the API's error code."""
    items: list[dict[str, Any] | None] = [None] * len(form.files)
    copies = duplicates(form.files, speakers)
    accepted, total = [], 0.0
    for k, upload in enumerate(form.files):
        if k in copies:
            continue
        if upload.error is not None:  # refused as it came in (not media, empty): nothing of it was kept
            items[k] = file_error(upload, upload.error)
            continue
        try:
            info = check_media(upload, settings)
            check_timeline(upload, info.duration, options.hop or default_hop, settings)
        except ApiError as exc:
            items[k] = file_error(upload, exc)
            continue
        accepted.append(k)
        total += info.duration or 0.0
    if total > settings.max_duration:
        raise ApiError(413, "media_too_long", f"the {len(accepted)} files last {total:.1f} s together, more than the "
                       f"{settings.max_duration:g} s this server predicts in one request")
    paths = [form.files[k].path for k in accepted]
    grouping = None if speakers is None else {form.files[k].path: speakers[k] for k in accepted
                                              if speakers[k] is not None}
    extra = {"transcribe": True} if options.transcribe else {}
    outcomes = predictor.predict_many(paths, speakers=grouping, window=options.window, hop=options.hop,
                                      modalities=options.modalities, **extra)
    for k, outcome in zip(accepted, outcomes, strict=True):
        upload = form.files[k]
        if outcome.ok:
            items[k] = dataclasses.replace(outcome.prediction, path=upload.filename).to_dict()
        elif outcome.internal:  # a bug: this file's item says so, the others are answered (details: server log)
            log.error("internal error predicting %s of a batch", upload.filename, exc_info=outcome.exception)
            items[k] = file_error(upload, ApiError(500, "internal_error", f"{upload.filename}: internal error "
                                                   "(details in the server log); please report it"))
        else:
            reason = outcome.reason.replace(str(upload.path), upload.filename).replace(str(upload.path.parent), "")
            items[k] = file_error(upload, ApiError(422, error_code(outcome.exception), f"{upload.filename}: {reason}"))
    for k, first in copies.items():  # the first copy's answer (its message names the first copy)
        items[k] = {**items[first], "path": form.files[k].filename, "duplicate_of": first}
    return {"results": items}


def duplicates(files: Sequence[Upload], speakers: Sequence[str | None] | None) -> dict[int, int]:
    """``{k: j}`` for each upload ``k`` whose content is that of an earlier upload ``j``
    (:func:`~avemo.inference.speakers.content_copies`, as the CLI's): it is neither predicted again nor
    counted again toward its speaker's clips; 422 if two copies were given different speakers."""
    try:
        return content_copies([u.path for u in files], speakers, [u.filename for u in files], remember=False)
    except ConfigError as exc:
        raise ApiError(422, "invalid_field", exc.reason) from None


def batch_form_schema(single: Mapping[str, Any], settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /v1/predict/batch``, made from ``single``, that of
    ``/v1/predict`` (:func:`~avemo.serving.options.predict_form_schema`): several files, speakers, no
    progress_id."""
    body = copy.deepcopy(dict(single))
    schema = body["requestBody"]["content"]["multipart/form-data"]["schema"]
    props = schema["properties"]
    props.pop("progress_id")
    props["file"] = {
        "type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
        "maxItems": settings.max_batch_files,
        "description": f"1 to {settings.max_batch_files} video or audio files, in the formats of POST /v1/predict (the "
        f"content is sniffed; the name is only displayed); together at most {settings.max_upload_bytes} bytes and "
        f"{settings.max_duration:g} s.",
    }
    props["speaker"] = {
        "type": "array", "items": {"type": "string", "maxLength": 256},
        "description": "Optional: the speaker of each file, one field per file in the order of the files (an empty "
        "one: that file has no speaker). Each speaker's files are judged against each other (speaker-level "
        "normalisation, a model with a speaker-normalised audio head: GET /v1/models lists its speaker_norm, "
        "min_clips among them); else 422 speaker_grouping_unavailable.",
    }
    props["group_by_speaker"] = {
        "type": "boolean", "default": False,
        "description": "All the files are clips of one speaker (its id in the answer: \"speaker\"); excludes "
        "speaker.",
    }
    body["requestBody"]["content"]["multipart/form-data"]["encoding"] = {
        "file": {"contentType": "application/octet-stream"}}
    return body
