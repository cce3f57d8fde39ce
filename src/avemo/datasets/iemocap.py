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
normalised (:func:`~avemo.datasets.text.normalise_text`). Modalities: ``("audio", "text")``, or
``("audio",)`` for an utterance without a transcript line. Per-utterance video is not cut from
the dialogue's ``.avi`` (two speakers, one camera per actor): the clip carries no video.
``fields``: session, gender, the original label, start and end (s), valence, activation,
dominance, and the dialogue video when present.

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

import logging
import re
from pathlib import Path

from avemo.datasets.labels import IEMOCAP4, IEMOCAP6, LabelSet
from avemo.datasets.records import Clip
from avemo.datasets.scan import ScanCollector, ScanResult, check_root
from avemo.datasets.text import normalise_text
from avemo.errors import DatasetError

log = logging.getLogger(__name__)

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


def _sessions(root: Path) -> list[Path]:
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


def _read_dialogue(session: Path, label_file: Path, protocol: str, collector: ScanCollector) -> None:
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
        collector.add(Clip(
            path=wav,
            dataset=DATASET,
            emotion=emotion,
            speaker=f"Ses{m.group(1)}{m.group(2)}",
            take=utterance,
            modalities=("audio", "text") if text is not None else ("audio",),
            fields={
                "session": int(m.group(1)), "gender": "female" if m.group(2) == "F" else "male", "label": code,
                "start": start, "end": end, "dimensions": tuple(dims),
                "dialogue_video": str(video) if video is not None else None,
            },
            text=text,
            dialogue=dialogue,
            turn=turn,
        ))


def _report_unmatched_transcripts(session: Path, collector: ScanCollector) -> None:
    """Transcript lines whose utterance has no wav file (and so no clip) are listed as skipped."""
    for path in _files(session / "dialog" / "transcriptions"):
        wav_dir = session / "sentences" / "wav" / path.stem
        for utterance, (number, _) in _read_transcripts(path).items():
            if not (wav_dir / f"{utterance}.wav").is_file():
                collector.skip(_at(path, number), f"transcript of {utterance} matches no wav file")


def read_iemocap(root: str | Path, *, strict: bool = False, protocol: str = "iemocap4") -> ScanResult:
    """Read an IEMOCAP release under ``root`` with the label ``protocol`` (``"iemocap4"``,
    ``"iemocap6"``); see the module doc. Clips come in session, dialogue and turn order."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"IEMOCAP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    root_path = check_root(root, DATASET)
    collector = ScanCollector(DATASET, root_path, strict=strict)
    for session in _sessions(root_path):
        label_files = _files(session / "dialog" / "EmoEvaluation")
        if not label_files:
            collector.result.warnings.append(f"{session}: no label file in dialog/EmoEvaluation")
        for label_file in label_files:
            _read_dialogue(session, label_file, protocol, collector)
        _report_unmatched_transcripts(session, collector)
    if collector.result.left_out:
        counts = ", ".join(f"{code} {n}" for code, n in sorted(collector.result.left_out.items()))
        collector.result.warnings.append(f"left out by protocol {protocol}: {counts}")
    for line in collector.result.warnings:
        log.warning(line)
    return collector.result


def iemocap_label_set(protocol: str) -> LabelSet:
    """The label set of an IEMOCAP ``protocol``."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"IEMOCAP protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol][0]
