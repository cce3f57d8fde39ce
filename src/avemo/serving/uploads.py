"""Receive uploaded media files safely: stream them to a private folder, sniff them, check their length.

:func:`receive_form` parses the ``multipart/form-data`` body itself, chunk by chunk as it
arrives (python-multipart's streaming parser), instead of letting the framework spool the whole
body first, so that

* the size limit is enforced while the bytes stream in: the request is refused with 413 as soon
  as its file parts together pass ``max_upload_bytes`` (or at once when ``Content-Length`` already
  says so), whether it carries one file (``POST /v1/predict``) or several
  (``POST /v1/predict/batch``, at most ``max_files``);
* the container is recognised from the first bytes (:mod:`avemo.media.sniff`) and anything
  else is refused with 415 before more of it is read (in a batch, that file alone: its
  :attr:`Upload.error`, the rest of its part read and discarded, never written, and still counted
  toward the size limit; an empty file likewise); the client's file name and MIME type are
  never trusted: the file is saved as ``upload`` + the suffix of the sniffed container (the k-th
  file of a batch as ``upload-k`` + the suffix), inside a fresh ``tempfile.mkdtemp`` folder (mode 0700) that the caller removes in ``finally``;
* a body that ends before its closing boundary (a truncated upload), a client that disconnects,
  stalls (``read_timeout``), trickles (``min_upload_rate``) or takes too long (``upload_timeout``),
  unknown or oversized form fields are refused with one-line JSON errors.

:func:`check_media` then runs (in a worker thread, before the predictor) the checks that need
the whole file: it demuxes the packets (with the sniffed container's demuxer forced, as
:func:`avemo.media.open_media` always does), refusing media longer than ``max_duration`` (the
packets are read, so a header that lies about the duration does not help), and probes the
streams with :func:`avemo.media.probe`. Nothing uploaded is ever unpickled or loaded as
anything but media.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from avemo.errors import MediaError
from avemo.media import MediaInfo, probe
from avemo.media.decode import SPAN_TIMED, demuxed
from avemo.media.probe import audio_stream, open_media, video_stream
from avemo.media.sniff import SNIFF_BYTES, Container, describe_supported, sniff
from avemo.serving.responses import ApiError
from avemo.serving.settings import ServeSettings

#: the form fields a prediction request may carry besides ``file``
FORM_FIELDS = ("window", "hop", "modalities", "progress_id", "transcribe")
#: bytes allowed in a non-file form field
MAX_FIELD_BYTES = 256
#: parts in one form of one file (the file plus each field, some repeated); a batch of n files may
#: have ``MAX_PARTS + 2 * n`` (each file and its speaker field)
MAX_PARTS = 8
#: multipart framing and the small fields, on top of the file itself, for the Content-Length check
FORM_OVERHEAD = 64 * 1024


@dataclass
class Upload:
    """A received upload: where it was saved and what the client called it; a file of a batch that
    was refused as it came in (not media, empty) has no path nor container, but its ``error``."""

    path: Path | None
    filename: str  # the display name: the last component of the client's name, sanitised
    container: Container | None
    size: int
    fields: dict[str, list[str]] = field(default_factory=dict)
    error: ApiError | None = None

    def field(self, name: str) -> str | None:
        """The last value of form field ``name`` (or None)."""
        values = self.fields.get(name)
        return values[-1] if values else None


@dataclass
class Form:
    """A received form: its files in the order they came (each an :class:`Upload` carrying the
    form's fields) and its fields (each name's values in order)."""

    files: list[Upload]
    fields: dict[str, list[str]] = field(default_factory=dict)

    def field(self, name: str) -> str | None:
        """The last value of form field ``name`` (or None)."""
        values = self.fields.get(name)
        return values[-1] if values else None


def display_name(raw: str | None) -> str:
    """The client's file name reduced to a harmless label: the last path component, printable
    characters only, at most 120 characters. It is only ever shown, never used as a path."""
    if not raw:
        return "upload"
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ").strip()
    name = name.lstrip(".") or "upload"
    return name[:120]


class _FormReader:
    """The callbacks of python-multipart's streaming parser: fields to memory, the files to disk
    (at most ``max_files``; ``names``: the fields allowed besides ``file``)."""

    def __init__(self, folder: Path, settings: ServeSettings, max_files: int = 1,
                 names: tuple[str, ...] = FORM_FIELDS):
        self.folder = folder
        self.max_bytes = settings.max_upload_bytes
        self.max_files = max_files
        self.max_parts = MAX_PARTS + (2 * max_files if max_files > 1 else 0)
        self.names = names
        self.parts = 0
        self.ended = False
        self.fields: dict[str, list[str]] = {}
        self.files: list[Upload] = []  # the files received whole
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._part: str | None = None  # "file" or a field name
        self._value = bytearray()
        # the file part being received
        self.filename = "upload"
        self.size = 0  # of all the files so far
        self.container: Container | None = None
        self.path: Path | None = None
        self._head = bytearray()
        self._fd: int | None = None
        self._file_size = 0
        self._refused: ApiError | None = None  # the file being received is refused (a batch goes on)

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    # --- headers
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise ApiError(400, "too_many_parts", f"the form has more than {self.max_parts} parts")
        self._headers = {}
        self._part = None
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value).strip()
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise ApiError(400, "malformed_multipart", "a form part lacks 'Content-Disposition: form-data; name=...'")
        name_text = name.decode("utf-8", errors="replace")
        if name_text == "file":
            if len(self.files) >= self.max_files:
                raise _too_many_files(self.max_files)
            raw = params.get(b"filename")
            self.filename = display_name(raw.decode("utf-8", errors="replace") if raw is not None else None)
            self.container, self.path, self._head, self._file_size = None, None, bytearray(), 0
            self._refused = None
        elif name_text not in self.names:
            shown = display_name(name_text)
            raise ApiError(422, "unknown_field",
                           f"unknown form field '{shown}'; expected file, {', '.join(self.names)}")
        self._part = name_text

    # --- data
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part == "file":
            self._write_file(chunk)
        else:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                raise ApiError(422, "field_too_long", f"form field '{self._part}' is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._part == "file":
            if self.container is None and self._refused is None:
                self._start_file()  # a file shorter than SNIFF_BYTES
            self.close()
            self.files.append(Upload(path=self.path, filename=self.filename, container=self.container,
                                     size=self._file_size, fields=self.fields, error=self._refused))
        elif self._part is not None:
            try:
                value = bytes(self._value).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(422, "invalid_field", f"form field '{self._part}' is not UTF-8 text") from None
            self.fields.setdefault(self._part, []).append(value)
        self._part = None

    def on_end(self) -> None:
        self.ended = True

    # --- the file
    def _write_file(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._file_size += len(chunk)
        if self.size > self.max_bytes:
            what = "the file is" if self.max_files == 1 else "the files together are"
            raise ApiError(413, "upload_too_large",
                           f"{self.filename}: {what} larger than the limit of {_human_bytes(self.max_bytes)}")
        if self._refused is not None:  # a refused file of a batch: the rest of it is read, not kept
            return
        if self.container is None:
            self._head += chunk
            if len(self._head) >= SNIFF_BYTES:
                self._start_file()
            return
        _write_all(self._fd, chunk)

    def _start_file(self) -> None:
        """Sniff the head of the file part; a recognised container: open its file on disk. Else 400
        (empty) or 415 (not media): the request's error, or, in a batch, that file's."""
        container = sniff(bytes(self._head)) if self._head else None
        if container is None:
            error = _not_media(self.filename) if self._head else ApiError(
                400, "empty_file", f"{self.filename}: the uploaded file is empty (0 bytes)")
            if self.max_files == 1:
                raise error
            self._refused, self._head = error, bytearray()
            return
        self.container = container
        self.path = self.folder / (f"upload{container.suffix}" if self.max_files == 1 else
                                   f"upload-{len(self.files)}{container.suffix}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.path, flags, 0o600)
        _write_all(self._fd, bytes(self._head))
        self._head = bytearray()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _not_media(filename: str) -> ApiError:
    """The 415 of an upload whose content is no audio or video container :mod:`avemo.media.sniff` knows."""
    return ApiError(415, "unsupported_media", f"{filename}: not a recognised audio or video file "
                    f"(the content was checked, not the name; accepted: {describe_supported()})")


def _too_many_files(limit: int) -> ApiError:
    if limit == 1:
        return ApiError(400, "several_files", "send one file per request (the form has several 'file' parts; "
                        "POST /v1/predict/batch takes several)")
    return ApiError(400, "too_many_files", f"the form has more than {limit} 'file' parts, the most this server "
                    "takes in one batch (max_batch_files)")


def _write_all(fd: int | None, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{round(n / (1024 * 1024), 1):g} MiB"
    if n >= 1024:
        return f"{round(n / 1024, 1):g} KiB"
    return f"{n} bytes"


async def _body(request: Request, settings: ServeSettings) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive; 408 when the client sends nothing for
    ``read_timeout`` seconds, or averages less than ``min_upload_rate`` once that long has passed
    (slow-client attacks hold a connection open with a few bytes at a time)."""
    loop = asyncio.get_running_loop()
    chunks = request.stream()
    started = loop.time()
    received = 0
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), settings.read_timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(408, "upload_timeout",
                           f"the client sent nothing for {settings.read_timeout:g} s during its upload") from None
        received += len(chunk)
        elapsed = loop.time() - started
        if elapsed > settings.read_timeout and received < settings.min_upload_rate * elapsed:
            raise ApiError(408, "upload_timeout",
                           f"the upload is too slow ({_human_bytes(int(received / elapsed))}/s; this server needs "
                           f"at least {_human_bytes(int(settings.min_upload_rate))}/s)")
        if chunk:
            yield chunk


async def receive_form(request: Request, folder: Path, settings: ServeSettings, max_files: int = 1,
                       names: tuple[str, ...] = FORM_FIELDS) -> Form:
    """Stream the multipart body of ``request`` into ``folder`` (which the caller created and removes):
    1 to ``max_files`` files and the fields ``names``.

    Raises :class:`ApiError` (400, 408, 413, 415, 422) for every bad upload; see the module docstring.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise ApiError(415, "unsupported_content_type",
                       "send the file as multipart/form-data with the file in a 'file' field")
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed_multipart", "the multipart/form-data Content-Type has no boundary")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_bytes = int(declared)
        except ValueError:
            raise ApiError(400, "bad_content_length", "the Content-Length header is not a number") from None
        if declared_bytes > settings.max_upload_bytes + FORM_OVERHEAD:
            raise ApiError(413, "upload_too_large",
                           f"the request ({_human_bytes(declared_bytes)}) is larger than the upload limit "
                           f"of {_human_bytes(settings.max_upload_bytes)}")
    reader = _FormReader(folder, settings, max_files, names)
    try:
        parser = MultipartParser(boundary, reader.callbacks(), max_header_count=8, max_header_size=4096)
    except (FormParserError, ValueError) as exc:
        raise ApiError(400, "malformed_multipart", f"unusable multipart boundary ({exc})") from None
    try:
        async with asyncio.timeout(settings.upload_timeout):
            async for chunk in _body(request, settings):
                parser.write(chunk)
    except TimeoutError:
        raise ApiError(408, "upload_timeout",
                       f"the upload took longer than {settings.upload_timeout:g} s") from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection during the upload") from None
    except FormParserError as exc:
        raise ApiError(400, "malformed_multipart", f"malformed multipart body ({exc})") from None
    finally:
        reader.close()
    if not reader.ended:
        raise ApiError(400, "truncated_upload",
                       "the multipart body ended before its closing boundary (a truncated upload)")
    if not reader.files:
        raise ApiError(400, "missing_file", "the form has no 'file' field")
    return Form(reader.files, reader.fields)


def scan_duration(path: Path, limit: float) -> float:
    """The media's real length in seconds, from its packets' time stamps (with the demuxer of the
    sniffed container forced, local files only: :func:`avemo.media.open_media`), made continuous where
    recordings were joined in one file (:class:`~avemo.media.decode.Continuity`: each one restarts them,
    so that a file of ten joined one-hour recordings measured one hour); stops and returns early once the
    length passes ``limit``."""
    with open_media(path) as media:
        streams = [s for s in (audio_stream(media), video_stream(media)) if s is not None]
        if not streams:
            raise MediaError("holds no audio or video stream", path)
        origins = {s.index: float(s.start_time * s.time_base) if s.start_time is not None else 0.0
                   for s in streams}
        end = 0.0
        try:
            for packet in demuxed(media, streams, _raise):
                if packet.pts is None or packet.time_base is None:
                    continue
                t = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origins[packet.stream.index]
                if t > end:
                    end = t
                    if end > limit:
                        break
        except (OSError, ValueError) as exc:  # FFmpeg's own errors are open_media's
            raise MediaError(f"cannot be read ({type(exc).__name__}: {exc})", path) from None
        return end


def _raise(exc: BaseException):
    raise exc


def check_media(upload: Upload, settings: ServeSettings) -> MediaInfo:
    """Refuse uploads that are corrupt (422) or longer than ``max_duration`` (413); return their probe.

    Runs before the predictor; errors name the client's file name, never the server's path.
    """
    try:
        info = probe(upload.path)
        # an MPEG-TS file's stated length is the span of its time stamps: joined recordings are measured
        if info.duration is not None and info.duration > settings.max_duration and info.container not in SPAN_TIMED:
            raise _too_long(upload, info.duration, settings)
        length = scan_duration(upload.path, settings.max_duration)
    except MediaError as exc:
        raise ApiError(422, "unreadable_media", f"{upload.filename}: {exc.reason}") from None
    if length > settings.max_duration:
        raise _too_long(upload, length, settings)
    return info


def _too_long(upload: Upload, duration: float, settings: ServeSettings) -> ApiError:
    return ApiError(413, "media_too_long",
                    f"{upload.filename}: the media lasts more than {settings.max_duration:g} s "
                    f"(at least {duration:.1f} s), the limit of this server")
