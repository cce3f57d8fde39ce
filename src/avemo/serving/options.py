"""The options of one prediction request: its form fields, validated, and their OpenAPI description.

``window``, ``hop``, ``modalities``, ``transcribe`` and ``progress_id`` arrive as multipart form
fields next to the file (:mod:`avemo.serving.uploads` reads them); ``transcribe`` may also be a
query parameter (``POST /v1/predict?transcribe=true``). :func:`parse_options` checks them against the
server's limits (:class:`~avemo.serving.settings.ServeSettings`: window lengths, the shortest hop)
and answers 422 for anything out of range; :func:`check_timeline` refuses, once the media's length
is known, a hop that would make more timeline rows than the server answers with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from avemo.inference.windows import shortest_hop, timeline_rows
from avemo.modality import MEDIA_MODALITIES
from avemo.serving.progress import PROGRESS_ID
from avemo.serving.responses import ApiError
from avemo.serving.settings import ServeSettings
from avemo.serving.uploads import MAX_FIELD_BYTES, Upload


def _number(upload: Upload, name: str) -> float | None:
    text = upload.field(name)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(422, "invalid_field", f"form field '{name}' must be a number of seconds") from None
    if not math.isfinite(value):
        raise ApiError(422, "invalid_field", f"form field '{name}' must be a finite number")
    return value


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """The prediction options of one request (form fields ``window``, ``hop``, ``modalities``);
    ``None`` = the model's default, as in ``avemo predict``."""

    window: float | None
    hop: float | None
    modalities: tuple[str, ...]
    progress_id: str | None = None
    transcribe: bool = False


#: how a form field or query parameter says yes or no (an HTML checkbox sends "on")
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _flag(upload: Upload, name: str, query: Mapping[str, str]) -> bool:
    text = upload.field(name)
    if text is None:
        text = query.get(name)
    if text is None or not text.strip():
        return False
    value = BOOLEANS.get(text.strip().lower())
    if value is None:
        raise ApiError(422, "invalid_field", f"'{name}' must be true or false")
    return value


def parse_options(upload: Upload, settings: ServeSettings, default_window: float = 1.0,
                  query: Mapping[str, str] | None = None) -> PredictOptions:
    """Validate the form fields (and the query parameters that may stand for them); 422 for anything out of range."""
    window = _number(upload, "window")
    if window is not None and not settings.min_window <= window <= settings.max_window:
        raise ApiError(422, "invalid_field",
                       f"window must lie between {settings.min_window:g} and {settings.max_window:g} s, got {window:g}")
    hop = _number(upload, "hop")
    longest = window if window is not None else default_window
    if hop is not None and not settings.min_hop <= hop <= longest:
        raise ApiError(422, "invalid_field",
                       f"hop must lie between {settings.min_hop:g} s and the window ({longest:g} s), got {hop:g}")
    chosen: list[str] = []
    for value in upload.fields.get("modalities", []):
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item not in MEDIA_MODALITIES:
                raise ApiError(422, "invalid_field",
                               f"unknown modality '{item[:20]}'; use audio, video or audio,video")
            if item not in chosen:
                chosen.append(item)
    if "modalities" in upload.fields and not chosen:
        raise ApiError(422, "invalid_field", "modalities is empty; use audio, video or audio,video")
    progress_id = upload.field("progress_id")
    if progress_id is not None and not PROGRESS_ID.match(progress_id):
        raise ApiError(422, "invalid_field", "progress_id must be 32 lower-case hex digits")
    return PredictOptions(window=window, hop=hop, modalities=tuple(chosen) or MEDIA_MODALITIES, progress_id=progress_id,
                          transcribe=_flag(upload, "transcribe", query or {}))


def check_timeline(upload: Upload, duration: float | None, hop: float, settings: ServeSettings) -> None:
    """422 when ``duration`` seconds at ``hop`` would give more than ``max_timeline_rows`` windows."""
    rows = timeline_rows(duration, hop)
    if rows > settings.max_timeline_rows:
        raise ApiError(422, "timeline_too_long",
                       f"{upload.filename}: a hop of {hop:g} s over {duration:.0f} s makes {rows} timeline windows; "
                       f"this server answers with at most {settings.max_timeline_rows} (use a hop of at least "
                       f"{shortest_hop(duration, settings.max_timeline_rows):g} s)")


def predict_form_schema(settings: ServeSettings, default_window: float, default_hop: float) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /v1/predict`` (the form is parsed by hand, so FastAPI
    cannot derive it), with the server's limits."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "additionalProperties": False,
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "A video (mp4, mov, mkv, webm, avi, flv) or audio file (wav, flac, "
                                "mp3, ogg, m4a, aac). The content is sniffed; the name is only displayed. At most "
                                f"{settings.max_upload_bytes} bytes and {settings.max_duration:g} s.",
                            },
                            "window": {
                                "type": "number",
                                "minimum": settings.min_window,
                                "maximum": settings.max_window,
                                "default": default_window,
                                "description": "Timeline window length in seconds (default: the model's).",
                            },
                            "hop": {
                                "type": "number",
                                "minimum": settings.min_hop,
                                "maximum": settings.max_window,
                                "description": f"Timeline hop in seconds, <= window (default: the model's, "
                                f"{default_hop:g} s); duration / hop may not exceed {settings.max_timeline_rows}.",
                            },
                            "modalities": {
                                "type": "string",
                                "pattern": "^(audio|video)(,(audio|video))?$",
                                "maxLength": MAX_FIELD_BYTES,
                                "default": "audio,video",
                                "description": "Which modalities to use: audio, video, or audio,video.",
                            },
                            "transcribe": {
                                "type": "boolean",
                                "default": False,
                                "description": "Also say what was said (offline Whisper-base): the clip's "
                                "`transcript` (text, language, timed words) and each window's `text`. Also accepted "
                                "as a query parameter.",
                            },
                            "progress_id": {
                                "type": "string",
                                "pattern": "^[0-9a-f]{32}$",
                                "description": "A random id (32 hex digits) under which GET /v1/progress/{id} "
                                "reports this request's progress while it runs.",
                            },
                        },
                    },
                    "encoding": {"file": {"contentType": "application/octet-stream"}},
                }
            },
        }
    }
