"""The options of one prediction request: its form fields, validated, and their OpenAPI description.

``window``, ``hop``, ``modalities``, ``transcribe`` and ``progress_id`` arrive as multipart form
fields next to the file (:mod:`avemo.serving.uploads` reads them); ``modalities`` and ``transcribe``
may also be query parameters (``POST /v1/predict?modalities=audio,video,text``). A request may ask
only for the modalities the server offers (:attr:`ServeSettings.offered
<avemo.serving.settings.ServeSettings.offered>`; ``text`` when it was started with the text
expert), else 422 ``modality_unavailable`` saying how to enable it. :func:`parse_options` checks them against the
server's limits (:class:`~avemo.serving.settings.ServeSettings`: window lengths, the shortest hop)
and answers 422 for anything out of range (an empty field too: absent is the default, empty is no value); :func:`check_timeline` refuses, once the media's length
is known, a hop that would make more timeline rows than the server answers with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from avemo.inference.text import TEXT
from avemo.inference.windows import SECONDS, shortest_hop, timeline_rows
from avemo.modality import MODALITIES
from avemo.serving.progress import PROGRESS_ID
from avemo.serving.responses import ApiError
from avemo.serving.settings import ServeSettings
from avemo.serving.uploads import MAX_FIELD_BYTES, Form, Upload


def _number(upload: Upload | Form, name: str) -> float | None:
    """The number in form field ``name`` (None: absent); 422 for anything else, an empty field too (the
    OpenAPI schema says number: a batch whose files are all refused still checks its fields)."""
    text = upload.field(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(422, "invalid_field", f"form field '{name}' must be a number of seconds") from None
    if not math.isfinite(value):
        raise ApiError(422, "invalid_field", f"form field '{name}' must be {SECONDS}, got {text.strip()}")
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


#: the fields a request may send as query parameters instead (``POST /v1/predict?modalities=audio,video,text``)
QUERY_FIELDS = ("modalities", "transcribe")


def check_query(upload: Upload | Form, query: Mapping[str, str]) -> None:
    """422 for a query parameter that is none of :data:`QUERY_FIELDS` (``?window=2``, and
    ``?group_by_speaker=true`` on a batch, were ignored without a word: the default answer came back),
    and for a field sent both as a form field and as a query parameter (one of them was ignored)."""
    for name in query:
        if name not in QUERY_FIELDS:
            raise ApiError(422, "unknown_field", f"unknown query parameter '{name[:40]}'; only "
                           f"{' and '.join(QUERY_FIELDS)} may be query parameters: send the others as form fields")
        if name in upload.fields:
            raise ApiError(422, "invalid_field", f"'{name}' is sent both as a form field and as a query parameter: "
                           "send it once")


#: how a form field or query parameter says yes or no (an HTML checkbox sends "on")
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def read_flag(upload: Upload | Form, name: str, query: Mapping[str, str]) -> bool:
    """A yes/no form field (or query parameter) ``name``; False when absent; 422 when neither."""
    text = upload.field(name)
    if text is None:
        text = query.get(name)
    if text is None:
        return False
    value = BOOLEANS.get(text.strip().lower())
    if value is None:
        raise ApiError(422, "invalid_field", f"'{name}' must be true or false")
    return value


def _modalities(upload: Upload | Form, offered: Sequence[str], query: Mapping[str, str],
                reads: Sequence[str] | None = None) -> tuple[str, ...]:
    """The ``modalities`` field (or query parameter), checked against the modalities this server
    offers (of those the model ``reads``, when known); without one, the offered media modalities
    (text is used only when asked for)."""
    values = upload.fields.get("modalities") or ([query["modalities"]] if "modalities" in query else [])
    chosen: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item not in MODALITIES:
                raise ApiError(422, "invalid_field", f"unknown modality '{item[:20]}'; use {_choices(offered)}")
            if item not in chosen:
                chosen.append(item)
    if values and not chosen:
        raise ApiError(422, "invalid_field", f"modalities is empty; use {_choices(offered)}")
    for item in chosen:
        if item not in offered:
            raise ApiError(422, "modality_unavailable", f"this server does not offer the {item} modality "
                           f"(it offers {', '.join(offered)}); {_enable_hint(item, offered, reads)}")
    if chosen == [TEXT]:
        raise ApiError(422, "invalid_field", "modalities: text needs audio or video next to it (the text expert "
                       "adds to the other experts), e.g. audio,video,text")
    return tuple(m for m in MODALITIES if m in chosen) if chosen else tuple(m for m in offered if m != TEXT)


def _choices(offered: Sequence[str]) -> str:
    return f"one or more of {', '.join(offered)}, comma-separated (e.g. {','.join(offered)})"


def _enable_hint(modality: str, offered: Sequence[str], reads: Sequence[str] | None = None) -> str:
    """How the server's operator enables ``modality``, or that the model does not read it."""
    if reads is not None and modality != TEXT and modality not in reads:
        return f"its model reads {', '.join(reads)}, not {modality}"
    wanted = ",".join(m for m in MODALITIES if m in offered or m == modality)
    if modality == TEXT:
        return (f"start it with avemo serve --modalities {wanted} to load the text expert on the transcript "
                "(--text-model RUN picks the text model; default: the bundled one)")
    return f"start it with avemo serve --modalities {wanted}"


def parse_options(upload: Upload | Form, settings: ServeSettings, default_window: float = 1.0,
                  query: Mapping[str, str] | None = None, reads: Sequence[str] | None = None) -> PredictOptions:
    """Validate the form fields (and the query parameters that may stand for them); 422 for anything out of
    range. ``reads``: the modalities the model reads (a modality it does not is not one to enable)."""
    query = query or {}
    check_query(upload, query)
    window = _number(upload, "window")
    shortest = max(settings.min_window, settings.min_hop)  # a window sent alone may take itself as its hop
    if window is not None and not shortest <= window <= settings.max_window:
        raise ApiError(422, "invalid_field",
                       f"window must lie between {shortest:g} and {settings.max_window:g} s, got {window:g}")
    hop = _number(upload, "hop")
    longest = window if window is not None else default_window
    if hop is not None and not settings.min_hop <= hop <= longest:
        raise ApiError(422, "invalid_field",
                       f"hop must lie between {settings.min_hop:g} s and the window ({longest:g} s), got {hop:g}")
    chosen = _modalities(upload, settings.offered, query, reads)
    progress_id = upload.field("progress_id")
    if progress_id is not None and not PROGRESS_ID.match(progress_id):
        raise ApiError(422, "invalid_field", "progress_id must be 32 lower-case hex digits")
    return PredictOptions(window=window, hop=hop, modalities=chosen, progress_id=progress_id,
                          transcribe=read_flag(upload, "transcribe", query))


def check_timeline(upload: Upload, duration: float | None, hop: float, settings: ServeSettings) -> None:
    """422 when ``duration`` seconds at ``hop`` would give more than ``max_timeline_rows`` windows."""
    rows = timeline_rows(duration, hop)
    if rows > settings.max_timeline_rows:
        raise ApiError(422, "timeline_too_long",
                       f"{upload.filename}: a hop of {hop:g} s over {duration:.0f} s makes {rows} timeline windows; "
                       f"this server answers with at most {settings.max_timeline_rows} (use a hop of at least "
                       f"{shortest_hop(duration, settings.max_timeline_rows):g} s)")


def _modalities_schema(offered: Sequence[str]) -> dict[str, Any]:
    """The ``modalities`` field as this server accepts it: a comma-separated list of what it offers."""
    names = "|".join(offered)
    media = ",".join(m for m in offered if m != TEXT)
    text = ("`text` adds the text expert on the transcript (it implies `transcribe`; the JSON then has "
            "`modalities.text` with the text model's own probabilities, and the clip's and each window's "
            "probabilities include its evidence); it needs audio or video next to it."
            if TEXT in offered else
            "`text` (the text expert on the transcript) is not offered by this server: such a request is answered "
            "422 `modality_unavailable`; start the server with `avemo serve --modalities audio,video,text` to offer it.")
    return {
        "type": "string",
        "pattern": f"^({names})(,({names})){{0,{len(offered) - 1}}}$",
        "maxLength": MAX_FIELD_BYTES,
        "default": media,
        "description": f"Which modalities to use, comma-separated, among those this server offers: "
        f"{', '.join(offered)} (default: {media}). {text} Also accepted as a query parameter.",
    }


def predict_form_schema(settings: ServeSettings, default_window: float, default_hop: float) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /v1/predict`` (the form is parsed by hand, so FastAPI
    cannot derive it), with the server's limits, and the query parameters that may stand for its fields."""
    operation = {
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
                                "minimum": max(settings.min_window, settings.min_hop),
                                "maximum": settings.max_window,
                                "default": default_window,
                                "description": "Timeline window length in seconds (default: the model's).",
                            },
                            "hop": {
                                "type": "number",
                                "minimum": settings.min_hop,
                                "maximum": settings.max_window,
                                "description": f"Timeline hop in seconds, <= window (default: the model's, "
                                f"{default_hop:g} s, or the window when that is shorter); duration / hop may not "
                                f"exceed {settings.max_timeline_rows}.",
                            },
                            "modalities": _modalities_schema(settings.offered),
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
    operation["parameters"] = _query_parameters(
        operation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"])
    return operation


def _query_parameters(fields: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` of :data:`QUERY_FIELDS`: each form field's schema, in the query (they
    were accepted there but not declared: a client made from the document could not send them)."""
    return [{"name": name, "in": "query", "required": False,
             "description": f"The form field `{name}`, sent as a query parameter instead (not both: 422).",
             "schema": {k: v for k, v in fields[name].items() if k != "description"}} for name in QUERY_FIELDS]
