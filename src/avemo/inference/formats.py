"""Output formats of ``avemo predict``: a table for people, JSON and CSV for programs.

* JSON: one file -> ``Prediction.to_dict()`` (the same object the REST API returns); several
  files -> a list of them.
* CSV: one row per file (``level = clip``: start 0, end = duration, face coverage) followed by one
  row per timeline window (``level = window``), with the probability of every emotion in its own
  column (empty, like ``emotion``, where there is none), whether audio / video contributed, the
  speech share (``speech``) and the uncertainty flag (``uncertain``); with transcripts, a ``text``
  column (the clip's transcript, each window's words); with the text expert (``--modalities
  audio,video,text``), ``text_used``: whether it contributed to the clip and to each window, as
  ``audio`` and ``video`` say for theirs (``text`` holds the words, not that); then ``crowd``: the
  crowd detector's score of each window (:mod:`avemo.inference.crowd`; at or above the model's ``crowd_threshold`` the window
  got no audio vote), empty on clip rows, in windows without audio and for a model without the
  detector; last, with speakers (``--group-by-speaker`` / ``--speakers``), ``speaker`` (every row of a file
  given one) and ``speaker_normalised`` (true on the clip row of a speaker-normalised result; windows
  keep the single-clip head). A file name or speaker that a spreadsheet would run as
  a formula (starting with ``= + - @``, a tab or a carriage return) is written with a leading ``'``.
* Table: per file, the clip's emotion, the probability of each emotion (clip, and each expert
  alone: audio, video, text), the speaker when one was given (and whether its audio was
  speaker-normalised), which modalities were used and why not ("video: not used: an audio-only file
  (no video stream)"), the transcript when there is
  one, and the timeline (every window for short clips, runs of the same emotion for long ones; with
  the words said in each, and each window's crowd score); an uncertain result or window is marked
  ``?``, one without emotion reads "no emotion (no speech, no face)", a window without emotion reads
  "no speech", or "crowd" when the crowd gate took its voice out (the window's ``crowd_gated``: by its
  own score, or by the decision of a clip that is mostly a crowd).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from avemo.errors import ConfigError
from avemo.inference.result import NO_AUDIO_TRACK, Prediction
from avemo.inference.text import TEXT

FORMATS = ("table", "json", "csv")
#: the format an output file's extension names (``avemo predict --out r.json`` without ``--format``)
SUFFIX_FORMATS = {".json": "json", ".csv": "csv"}
MAX_WINDOW_ROWS = 16  # longer timelines are shown as runs of one emotion
NO_EMOTION = "no speech"  # the table's word for a window without emotion (no speech, no face)
CROWD = "crowd"  # ... and for one whose voice the crowd gate took out (several people talk at once)


def output_format(fmt: str | None, out: Path | None) -> str:
    """The format of ``avemo predict``'s output: ``fmt`` (``--format``) when given, else the one ``out``'s
    extension names (``.json``, ``.csv``), else a table. ``--out r.json`` alone used to write the table into
    r.json; a ``--format`` that contradicts the extension (``--format csv --out r.json``) is refused."""
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    named = SUFFIX_FORMATS.get(out.suffix.lower()) if out is not None else None
    if fmt is not None and named is not None and fmt != named:
        raise ConfigError(f"--format {fmt} contradicts --out {out.name}, a {named.upper()} file name: drop --format "
                          "(the extension chooses) or name the file to match")
    return fmt or named or "table"


def to_json(predictions: Sequence[Prediction], *, single: bool) -> str:
    data = predictions[0].to_dict() if single and len(predictions) == 1 else [p.to_dict() for p in predictions]
    return json.dumps(data, indent=2)


#: a cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """``text`` as a CSV cell that a spreadsheet shows as text and never runs: a leading ``'`` before
    a formula start, as spreadsheets themselves write it (OWASP, "CSV Injection")."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_columns(labels: Sequence[str], text: bool = False, speaker: bool = False,
                text_used: bool = False) -> list[str]:
    """The CSV's columns: ``text`` (the transcript's words) with transcripts, ``text_used`` (whether the
    text expert contributed, as ``audio`` and ``video`` say of theirs) when it ran, the speaker columns
    with speakers."""
    return ["path", "level", "start", "end", "emotion", *labels, "audio", "video", "face_coverage", "speech",
            "uncertain", *(["text"] if text else []), *(["text_used"] if text_used else []), "crowd",
            *(["speaker", "speaker_normalised"] if speaker else [])]


def to_csv(predictions: Sequence[Prediction], labels: Sequence[str] = ()) -> str:
    """The predictions as CSV, one row per clip and window, with a probability column per label: ``labels``
    (the model's) when given, else those of the first prediction with probabilities (a batch of silent
    files had no probability columns at all when they were taken from the predictions only)."""
    if not predictions:
        return ""
    labels = list(labels) or next((p.labels for p in predictions if p.labels), [])
    text = any(p.transcript is not None for p in predictions)
    speaker = any(p.speaker is not None for p in predictions)
    text_used = any(TEXT in p.modalities for p in predictions)  # the text expert ran
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(labels, text, speaker, text_used), lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for p in predictions:
        path = spreadsheet_text(p.path)
        writer.writerow({
            "path": path, "level": "clip", "start": 0.0,
            "end": "" if p.duration is None else round(p.duration, 3), "emotion": p.emotion or "",
            **_cells(p.probabilities),
            "audio": p.modalities["audio"].used, "video": p.modalities["video"].used,
            "face_coverage": "" if p.face_coverage is None else f"{p.face_coverage:.4f}",
            "speech": _share(p.speech), "uncertain": p.uncertain,
            "text": "" if p.transcript is None else spreadsheet_text(p.transcript.text),
            "text_used": p.modalities[TEXT].used if TEXT in p.modalities else "",
            **_speaker_cells(p, clip=True),
        })
        for w in p.timeline:
            writer.writerow({
                "path": path, "level": "window", "start": round(w.start, 3), "end": round(w.end, 3),
                "emotion": w.emotion or "", **_cells(w.probabilities),
                "audio": w.audio, "video": w.video, "face_coverage": "", "speech": _share(w.speech),
                "uncertain": w.uncertain, "text": spreadsheet_text(w.text or ""),
                "text_used": "" if w.text_used is None else w.text_used, "crowd": _share(w.crowd),
                **_speaker_cells(p, clip=False),
            })
    return buffer.getvalue()


def _speaker_cells(p: Prediction, *, clip: bool) -> dict[str, object]:
    """The speaker columns: the file's speaker on every row; on the clip row, whether its result is
    speaker-normalised (windows never are)."""
    if p.speaker is None:
        return {}
    normalised = bool(p.modalities["audio"].speaker_normalised) if clip else False
    return {"speaker": spreadsheet_text(p.speaker), "speaker_normalised": normalised}


def _cells(probabilities) -> dict[str, str]:
    return {k: f"{v:.6f}" for k, v in (probabilities or {}).items()}


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _no_emotion(window) -> str:
    return CROWD if window.crowd_gated else NO_EMOTION


def seconds(t: float) -> str:
    """A time of the table to the millisecond, as short as it stays exact (0.0, 0.25, 4.004): one decimal
    used to print a 0.25 s grid as 0.0-0.2, 0.2-0.5, 0.5-0.8, windows that looked uneven and off the grid."""
    text = f"{t:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _bar(p: float, width: int = 20) -> str:
    full = int(round(p * width))
    return "█" * full + "·" * (width - full)


def runs(prediction: Prediction) -> list[tuple[float, float, str, float, int]]:
    """Consecutive windows with the same emotion: (start, end, emotion, mean probability, windows);
    windows without emotion make runs of "no speech" or "crowd" (probability 0)."""
    out: list[list] = []
    for w in prediction.timeline:
        p = float(w.probabilities[w.emotion]) if w.emotion is not None else 0.0
        emotion = w.emotion or _no_emotion(w)
        if out and out[-1][2] == emotion and w.start <= out[-1][1] + 1e-6:
            run = out[-1]
            run[1] = w.end
            run[3] += p
            run[4] += 1
        else:
            out.append([w.start, w.end, emotion, p, 1])
    return [(a, b, e, s / n, n) for a, b, e, s, n in out]


def render(prediction: Prediction, console) -> None:
    """Print one prediction as rich tables on ``console`` (file names and reasons are shown as they
    are, never read as rich markup). The headline and the modality lines are never broken at the
    console's width (a long path used to split "disgust (98 %)" over two lines): one line each, to grep."""
    from rich.markup import escape
    from rich.table import Table

    p = prediction
    duration = "" if p.duration is None else f" ({p.duration:.1f} s)"
    if p.emotion is None:
        # true of a joint checkpoint too, whose face is not read without the voice (the modality lines say why)
        console.print(f"[bold]{escape(p.path)}[/]{duration}: [yellow]no emotion[/] (no speech, and no face the model "
                      "could read on its own)", soft_wrap=True)
    else:
        flag = " [yellow]? uncertain[/]" if p.uncertain else ""
        console.print(f"[bold]{escape(p.path)}[/]{duration}: [bold green]{p.emotion}[/] "
                      f"({100 * p.probabilities[p.emotion]:.0f} %){flag}", soft_wrap=True)
    if p.speaker is not None:
        clips = p.modalities["audio"].speaker_clips
        how = (f"audio normalised with the statistics of its {clips} clips" if p.modalities["audio"].speaker_normalised
               else "single-clip result")
        console.print(f"  speaker: {escape(p.speaker)} ({how})", soft_wrap=True)
    for name, status in p.modalities.items():
        if status.used:
            extra = f", face in {100 * p.face_coverage:.0f} % of analysed frames" if name == "video" and p.face_coverage is not None else ""
            console.print(f"  {name}: used{extra}", soft_wrap=True)
        else:
            # "not used: REASON": a reason has brackets of its own ("an audio-only file (no video stream)")
            why = f": {escape(status.reason)}" if status.reason else ""
            console.print(f"  {name}: [yellow]not used[/]{why}", soft_wrap=True)
    own = {m: s.probabilities for m, s in p.modalities.items() if s.probabilities is not None}  # each expert alone
    table = Table(title="probabilities", title_justify="left")
    table.add_column("emotion")
    table.add_column("clip", justify="right")
    table.add_column("")
    for m in own:
        table.add_column(m, justify="right")
    for emotion, prob in sorted((p.probabilities or {}).items(), key=lambda kv: -kv[1]):
        row = [emotion, f"{prob:.3f}", _bar(prob), *(f"{own[m][emotion]:.3f}" for m in own)]
        table.add_row(*row, style="bold" if emotion == p.emotion else None)
    if p.probabilities is not None:
        console.print(table)
    if p.transcript is not None and getattr(p.modalities.get("audio"), "reason", None) == NO_AUDIO_TRACK:
        console.print("  transcript: none, no audio to transcribe")  # not "no speech recognised": nothing was heard
    elif p.transcript is not None:
        said = escape(p.transcript.text) if p.transcript.text else "[yellow]no speech recognised[/]"
        language = escape(f" [{p.transcript.language}]") if p.transcript.language else ""
        console.print(f"  transcript{language}: {said}")
    if not p.timeline:
        console.print("  timeline: no window with audio or a face")
        return
    said = [] if p.transcript is None else ["text"]
    crowd = [CROWD] if any(w.crowd is not None for w in p.timeline) else []
    if len(p.timeline) <= MAX_WINDOW_ROWS:
        timeline = Table("start", "end", "emotion", "p", "audio", "video", "speech", *crowd, *said, title="timeline",
                         title_justify="left")
        for w in p.timeline:
            emotion = _no_emotion(w) if w.emotion is None else w.emotion + (" ?" if w.uncertain else "")
            timeline.add_row(seconds(w.start), seconds(w.end), emotion,
                             "" if w.emotion is None else f"{w.probabilities[w.emotion]:.2f}",
                             "✓" if w.audio else CROWD if w.crowd_gated else "-", "✓" if w.video else "-",
                             "" if w.speech is None else f"{100 * w.speech:.0f} %",
                             *(["" if w.crowd is None else f"{100 * w.crowd:.0f} %"] if crowd else []),
                             *([escape(w.text or "")] if said else []))
    else:
        timeline = Table("from", "to", "emotion", "mean p", "windows", *said,
                         title=f"timeline ({len(p.timeline)} windows, runs of one emotion)", title_justify="left")
        for a, b, emotion, mean_p, n in runs(p):
            timeline.add_row(seconds(a), seconds(b), emotion, f"{mean_p:.2f}", str(n),
                             *([escape(p.transcript.between(a, b))] if said else []))
    console.print(timeline)
