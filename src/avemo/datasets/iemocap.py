"""IEMOCAP (Busso et al. 2008, "IEMOCAP: Interactive emotional dyadic motion capture database",
Language Resources and Evaluation 42(4)): five sessions of dyadic conversations, read from the
official release layout.

=========================================================  ===================================
``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt``         labels: one line per utterance,
                                                            ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``
                                                            (start - end in s, utterance, label,
                                                            [valence, activation, dominance]);
                                                            the annotators' lines are ignored
``Session{n}/dialog/transcriptions/<dialog>.txt``           ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``
``Session{n}/sentences/wav/<dialog>/<utterance>.wav``       the utterance's audio (the clip's path)
``Session{n}/dialog/avi/DivX/<dialog>.avi``                 the whole dialogue's video (recorded in
                                                            ``fields["dialogue_video"]``)
=========================================================  ===================================

The root may be the release folder itself or the folder holding it (``IEMOCAP_full_release/``).

**Records.** One clip per labelled utterance: ``speaker`` = session + the utterance's own gender,
the letter before its index (``Ses01F_impro01_M003`` is spoken by ``Ses01M``: the ``F`` of the
dialogue name says who wore the markers); ``dialogue`` = the dialogue name (``Ses01F_impro01``);
``turn`` = the utterance's rank by start time among the labelled utterances of its dialogue (those
left out by the protocol keep their rank, so turns have gaps there); ``text`` = its transcript,
normalised (:func:`~avemo.datasets.text.normalise_text`). The clip's path is the utterance's wav
and its modalities ``("audio", "text")``, or ``("audio",)`` for an utterance without a transcript
line. ``fields``: session, gender, the original label, start and end (s) of the utterance in its
dialogue, valence, activation, dominance, and the dialogue video when present.

**Video** (``media=``, CLI ``--media DIR``). The release has no video file per utterance: a
dialogue's ``.avi`` (720x480) shows both actors side by side, and the labels give each utterance's
span in it. ``avemo prepare --dataset iemocap`` (:func:`~avemo.datasets.iemocap_video.prepare_iemocap`)
cuts one file per labelled utterance into a folder: the span's frames, cropped to the speaker's half
of the picture, with the utterance's wav as its (bit-exact) audio track, listed in the folder's
:data:`MANIFEST`. Read with ``media=`` that folder, an utterance whose prepared file is there and
matches its span gets that file as its path and the modalities ``("audio", "video", "text")``
(``("audio", "video")`` without a transcript); ``fields`` then also hold ``video_side`` (``"left"``,
``"right"`` or ``"full"``), ``video_crop`` (x, y, width, height in the dialogue video) and ``wav``
(the utterance's own wav). Every other field, the speaker, dialogue, turn and text stay as without
``media``. An utterance without a prepared file (its cut failed, or it was not prepared) stays an
audio clip, and so does one whose prepared file was cut from another span (a changed label file):
both are counted in a warning.

Which half shows whom is a convention reported by other IEMOCAP preprocessing code, not checked
here (no IEMOCAP file is in the project): the LEFT half (x 0-360) shows the actor who wore the
motion-capture markers, the one whose gender the dialogue name carries (``Ses01F_*``: the female
actor), the RIGHT half the other actor. ``side="auto"`` (the default of ``avemo prepare``) follows
it; ``"left"``, ``"right"`` and ``"full"`` (the whole split-screen frame) override it.

**Protocols** (``protocol=``): ``"iemocap4"`` (neutral, happy with excited merged into it, sad,
angry; label set :data:`~avemo.datasets.labels.IEMOCAP4`) and ``"iemocap6"`` (paper 002, Gao et
al., section 5.2: neutral, happy, sad, angry, excited, frustrated; :data:`~avemo.datasets.labels.IEMOCAP6`).
Utterances with other labels (``xxx`` no agreement, ``oth``, ``sur``, ``fea``, ``dis``, and
``fru`` / ``exc`` where the protocol lacks them) are left out and counted in
:attr:`ScanResult.left_out`. The leave-one-session-out fold plan is the built-in ``iemocap_loso``
(:mod:`avemo.datasets.folds`).

**Bad input.** A labelled utterance without its wav file, a label outside IEMOCAP's codes, an
utterance name that does not follow the grammar or belongs to another dialogue, and a transcript
line whose utterance has no wav file are listed in ``skipped`` with the file, line and reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from avemo.datasets.labels import IEMOCAP4, IEMOCAP6, LabelSet
from avemo.datasets.records import Clip
from avemo.datasets.scan import ScanCollector, ScanResult, check_root
from avemo.datasets.text import normalise_text
from avemo.errors import DatasetError

DATASET = "iemocap"
#: IEMOCAP's categorical labels (the EmoEvaluation files' codes)
CODES = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx")
PROTOCOLS: dict[str, tuple[LabelSet, dict[str, str]]] = {
    "iemocap4": (IEMOCAP4, {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}),
    "iemocap6": (IEMOCAP6, {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry",
                            "exc": "excited", "fru": "frustrated"}),
}
_LABEL_LINE = re.compile(r"^\[(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\]\t(\S+)\t(\S+)\t\[([^\]]*)\]")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)\]:\s*(.*)$")
_UTTERANCE = re.compile(r"^Ses(0[1-5])[FM]_.+_([FM])\d{3}$")
#: the list of prepared files in a folder written by :func:`~avemo.datasets.iemocap_video.prepare_iemocap`
MANIFEST = "avemo_iemocap_media.json"
#: what the manifest's "format" says
MANIFEST_FORMAT = "avemo iemocap media 1"


def sessions(root: Path) -> list[Path]:
    """The ``Session1..5`` folders under ``root`` or under its one release folder."""
    found = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
    if not found:
        found = sorted(p for p in root.glob("*/Session[1-5]") if p.is_dir())
    if not found:
        raise DatasetError("no IEMOCAP Session1..Session5 folder here (nor in a release folder below)", root)
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


def _at(path: Path, line: int) -> Path:
    return path.with_name(f"{path.name}:{line}")


def _read_transcripts(path: Path) -> dict[str, tuple[int, str]]:
    """utterance -> (line, normalised text) of a transcription file (other lines are ignored)."""
    if not path.is_file():
        return {}
    out: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        m = _TRANSCRIPT_LINE.match(line.strip())
        if m:
            out.setdefault(m.group(1), (number, normalise_text(m.group(4))))
    return out


def _read_labels(path: Path, collector: ScanCollector) -> list[tuple[float, float, str, str, list[float], int]]:
    """The utterance lines of one EmoEvaluation file: (start, end, utterance, code, [v, a, d], line)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.startswith("["):
            continue
        m = _LABEL_LINE.match(line)
        if m is None:
            collector.skip(_at(path, number), f"not a label line ([start - end] utterance label [v, a, d]): {line[:60]!r}")
            continue
        start, end, utterance, code, vad = m.groups()
        try:
            dims = [float(v) for v in vad.split(",")] if vad.strip() else []
        except ValueError:
            dims = []
        rows.append((float(start), float(end), utterance, code, dims, number))
    return rows


def _dialogue_video(session: Path, dialogue: str) -> Path | None:
    """The dialogue's ``.avi`` under ``dialog/avi`` (``DivX/`` in the release), or None."""
    folder = session / "dialog" / "avi"
    return next(iter(sorted(folder.rglob(f"{dialogue}.avi"))), None) if folder.is_dir() else None


def read_manifest(folder: str | Path) -> dict[str, dict]:
    """The prepared files listed in ``folder``'s :data:`MANIFEST`: utterance -> its entry (``file``
    relative to ``folder``, ``start``, ``end``, ``side``, ``crop``, ...); ``{}`` when the folder has
    no manifest yet. One-line DatasetError for a manifest that cannot be read."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"cannot read the list of prepared files ({exc})", path) from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("utterances"), dict):
        raise DatasetError(f"not a list of prepared IEMOCAP files (format {MANIFEST_FORMAT!r} expected)", path)
    return data["utterances"]


@dataclass
class _Media:
    """The prepared folder of a scan (``media=``) and what was found in it."""

    folder: Path
    entries: dict[str, dict]
    used: int = 0
    missing: int = 0
    stale: int = 0

    def clip_file(self, utterance: str, start: float, end: float) -> tuple[Path, dict] | None:
        """The prepared file of ``utterance`` and its entry, if it is there and was cut from this span."""
        entry = self.entries.get(utterance)
        path = self.folder / str(entry.get("file", "")) if isinstance(entry, dict) else None
        if path is None or not path.is_file():
            self.missing += 1
            return None
        try:
            same = abs(float(entry["start"]) - start) <= 1e-6 and abs(float(entry["end"]) - end) <= 1e-6
        except (KeyError, TypeError, ValueError):  # an entry edited by hand: treated as another span
            same = False
        if not same:
            self.stale += 1
            return None
        self.used += 1
        return path, entry

    def warnings(self) -> list[str]:
        lines = []
        if self.missing:
            lines.append(f"{self.folder}: {self.missing} of {self.used + self.missing + self.stale} utterances have no "
                         "prepared video file; they stay audio clips (avemo prepare --dataset iemocap cuts them)")
        if self.stale:
            lines.append(f"{self.folder}: {self.stale} prepared video files were cut from another span than the label "
                         "file's; they stay audio clips (run avemo prepare --dataset iemocap again)")
        return lines


def _clip(wav: Path, utterance: str, m: re.Match, emotion: str, text: str | None, fields: dict,
          media: _Media | None, dialogue: str, turn: int) -> Clip:
    """The utterance's clip: its wav, or its prepared file (with the video fields) when ``media`` has one."""
    path, modalities = wav, ["audio"]
    prepared = media.clip_file(utterance, fields["start"], fields["end"]) if media is not None else None
    if prepared is not None:
        path, entry = prepared
        modalities.append("video")
        fields = {**fields, "video_side": entry.get("side"), "video_crop": tuple(entry.get("crop") or ()), "wav": str(wav)}
    return Clip(
        path=path,
        dataset=DATASET,
        emotion=emotion,
        speaker=f"Ses{m.group(1)}{m.group(2)}",
        take=utterance,
        modalities=tuple(modalities) + (("text",) if text is not None else ()),
        fields=fields,
        text=text,
        dialogue=dialogue,
        turn=turn,
    )


def _read_dialogue(session: Path, label_file: Path, protocol: str, collector: ScanCollector,
                   media: _Media | None = None) -> None:
    mapping = PROTOCOLS[protocol][1]
    dialogue = label_file.stem
    transcripts = _read_transcripts(session / "dialog" / "transcriptions" / f"{dialogue}.txt")
    wav_dir = session / "sentences" / "wav" / dialogue
    video = _dialogue_video(session, dialogue)
    rows = sorted(_read_labels(label_file, collector))
    for turn, (start, end, utterance, code, dims, number) in enumerate(rows):
        where = _at(label_file, number)
        m = _UTTERANCE.match(utterance)
        if m is None or not utterance.startswith(dialogue + "_"):
            collector.skip(where, f"utterance {utterance!r} is not an utterance name of dialogue {dialogue}")
            continue
        if code not in CODES:
            collector.skip(where, f"label {code!r} is not an IEMOCAP label ({', '.join(CODES)})")
            continue
        wav = wav_dir / f"{utterance}.wav"
        if not wav.is_file():
            collector.skip(where, f"no wav file {wav.relative_to(session.parent)}")
            continue
        emotion = mapping.get(code)
        if emotion is None:
            left = collector.result.left_out
            left[code] = left.get(code, 0) + 1
            continue
        text = transcripts.get(utterance, (0, ""))[1] or None
        fields = {
            "session": int(m.group(1)), "gender": "female" if m.group(2) == "F" else "male", "label": code,
            "start": start, "end": end, "dimensions": tuple(dims),
            "dialogue_video": str(video) if video is not None else None,
        }
        collector.add(_clip(wav, utterance, m, emotion, text, fields, media, dialogue, turn))


def _report_unmatched_transcripts(session: Path, collector: ScanCollector) -> None:
    """Transcript lines whose utterance has no wav file (and so no clip) are listed as skipped."""
    for path in _files(session / "dialog" / "transcriptions"):
        wav_dir = session / "sentences" / "wav" / path.stem
        for utterance, (number, _) in _read_transcripts(path).items():
            if not (wav_dir / f"{utterance}.wav").is_file():
                collector.skip(_at(path, number), f"transcript of {utterance} matches no wav file")


def read_iemocap(root: str | Path, *, strict: bool = False, protocol: str = "iemocap4",
                 media: str | Path | None = None) -> ScanResult:
    """Read an IEMOCAP release under ``root`` with the label ``protocol`` (``"iemocap4"``,
    ``"iemocap6"``); ``media``: a folder written by ``avemo prepare --dataset iemocap`` whose
    utterance videos become the clips' files (see the module doc). Clips come in session, dialogue
    and turn order."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"IEMOCAP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    root_path = check_root(root, DATASET)
    prepared = None
    if media is not None:
        folder = check_root(media, "prepared IEMOCAP media")
        if not (folder / MANIFEST).is_file():
            raise DatasetError(f"no {MANIFEST} here: not a folder written by avemo prepare --dataset iemocap", folder)
        prepared = _Media(folder, read_manifest(folder))
    collector = ScanCollector(DATASET, root_path, strict=strict)
    for session in sessions(root_path):
        label_files = _files(session / "dialog" / "EmoEvaluation")
        if not label_files:
            collector.result.warnings.append(f"{session}: no label file in dialog/EmoEvaluation")
        for label_file in label_files:
            _read_dialogue(session, label_file, protocol, collector, prepared)
        _report_unmatched_transcripts(session, collector)
    if prepared is not None:
        collector.result.warnings.extend(prepared.warnings())
    if collector.result.left_out:
        counts = ", ".join(f"{code} {n}" for code, n in sorted(collector.result.left_out.items()))
        collector.result.warnings.append(f"left out by protocol {protocol}: {counts}")
    return collector.result


def iemocap_label_set(protocol: str) -> LabelSet:
    """The label set of an IEMOCAP ``protocol``."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"IEMOCAP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol][0]
