"""MELD (Poria et al. 2019, "MELD: A Multimodal Multi-Party Dataset for Emotion Recognition in
Conversations", ACL): utterances of dialogues from the TV series Friends.

**Annotations.** The reader reads whichever of ``train_sent_emo.csv``, ``dev_sent_emo.csv`` and
``test_sent_emo.csv`` the folder holds (the official splits; at least one must be there), one
clip per row, and records the row's split in :attr:`Clip.split`. Columns used:

============== ======================================================================
``Utterance``  :attr:`Clip.text`, normalised by :func:`~avemo.datasets.text.normalise_text`
               (MELD's CSVs carry mojibake such as ``"\\x92"`` for an apostrophe)
``Speaker``    :attr:`Clip.speaker` (a character's name: speakers recur across splits)
``Emotion``    :attr:`Clip.emotion`: joy -> happy, anger -> angry, sadness -> sad,
               fear -> fearful, surprise -> surprised, disgust, neutral (label set ``meld``)
``Dialogue_ID`` :attr:`Clip.dialogue` ``"<split>:<id>"`` (ids restart in every split)
``Utterance_ID`` :attr:`Clip.turn`
============== ======================================================================

``Sentiment``, ``Season``, ``Episode``, ``StartTime``, ``EndTime`` (when present) and the CSV line
go to :attr:`Clip.fields`. The take is ``<split>_dia<D>_utt<U>``.

**Media (optional).** When the folder also holds MELD's clips, ``dia{D}_utt{U}.mp4`` in the
split folders of the official release (``train_splits/``, ``dev_splits_complete/``,
``output_repeated_splits_test/``; a folder named ``train``/``dev``/``test`` is accepted too), the
clip's path is that file and it carries ``("audio", "video", "text")`` (``("audio", "text")`` for
an audio file). Otherwise the clip is text-only: ``("text",)``, with the CSV as its path.

**Bad input.**

* a row with empty utterance text is skipped (and listed in ``skipped``) when the clip has no
  media file; with a media file it is kept without the text modality;
* a CSV that is not UTF-8 is decoded as Windows-1252 (MELD's subtitles' encoding) with a warning
  in :attr:`ScanResult.warnings`;
* dialogues with missing turns (MELD's train split has 72; rows skipped here leave gaps too) are
  kept in turn order; each clip's ``fields["missing_before"]`` counts the turns missing right
  before it, and a warning names how many dialogues have gaps;
* a missing column is a one-line :class:`~avemo.errors.DatasetError` naming the file and the
  column; a row with an unknown emotion, a non-numeric id, no speaker or a repeated
  (dialogue, turn) is skipped with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avemo.datasets.csvfile import WINDOWS_ANSI, read_text_csv
from avemo.datasets.labels import MELD, normalise_emotion
from avemo.datasets.records import SPLITS, Clip
from avemo.datasets.scan import ScanCollector, ScanResult, check_root, media_files
from avemo.datasets.text import normalise_text
from avemo.errors import DatasetError

DATASET = "meld"
#: the official annotation file of each split
CSV_NAMES = {split: f"{split}_sent_emo.csv" for split in SPLITS}
#: folders of the official release holding each split's clips (then the plain split name)
MEDIA_FOLDERS = {
    "train": ("train_splits", "train"),
    "dev": ("dev_splits_complete", "dev_splits", "dev"),
    "test": ("output_repeated_splits_test", "test_splits", "test"),
}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
OPTIONAL = {"Sentiment": "sentiment", "Season": "season", "Episode": "episode",
            "StartTime": "start_time", "EndTime": "end_time"}


def _media_index(root: Path, split: str) -> dict[str, Path]:
    """``"dia0_utt0"`` -> the clip's media file, from the first of the split's media folders that exists."""
    for name in MEDIA_FOLDERS[split]:
        folder = root / name
        if folder.is_dir():
            index: dict[str, Path] = {}
            for path in media_files(folder):
                index.setdefault(path.stem, path)
            return index
    return {}


def _modalities(path: Path | None, has_text: bool) -> tuple[str, ...]:
    from avemo.media.probe import AUDIO_SUFFIXES

    media: tuple[str, ...] = ()
    if path is not None:
        media = ("audio",) if path.suffix.lower() in AUDIO_SUFFIXES else ("audio", "video")
    return media + (("text",) if has_text else ())


def _read_split(root: Path, split: str, collector: ScanCollector) -> None:
    csv_path = root / CSV_NAMES[split]
    header, rows = read_text_csv(
        csv_path, what=f"MELD {split} CSV", required=REQUIRED, fallback=WINDOWS_ANSI,
        warn=collector.result.warnings.append,
    )
    col = {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}
    media = _media_index(root, split)
    parsed: dict[tuple[int, int], dict[str, Any]] = {}
    for line, values in rows:
        where = csv_path.with_name(f"{csv_path.name}:{line}")
        try:
            dialogue, turn = int(values[col["Dialogue_ID"]]), int(values[col["Utterance_ID"]])
        except ValueError:
            collector.skip(where, f"Dialogue_ID {values[col['Dialogue_ID']]!r} / Utterance_ID "
                                  f"{values[col['Utterance_ID']]!r} are not whole numbers")
            continue
        emotion = normalise_emotion(values[col["Emotion"]])
        if emotion not in MELD:
            collector.skip(where, f"emotion {values[col['Emotion']]!r} is not a MELD emotion ({', '.join(MELD)})")
            continue
        speaker = " ".join(values[col["Speaker"]].split())
        if not speaker:
            collector.skip(where, "no speaker")
            continue
        if (dialogue, turn) in parsed:
            collector.skip(where, f"dialogue {dialogue} turn {turn} repeated (first on line {parsed[dialogue, turn]['line']})")
            continue
        parsed[dialogue, turn] = {
            "line": line, "emotion": emotion, "speaker": speaker,
            "text": normalise_text(values[col["Utterance"]]),
            "path": media.get(f"dia{dialogue}_utt{turn}"),
            **{key: values[col[name]] for name, key in OPTIONAL.items() if name in col},
        }
    previous: dict[int, int] = {}
    gaps = set()
    for (dialogue, turn), row in sorted(parsed.items()):
        text, path = row.pop("text") or None, row.pop("path")
        if text is None and path is None:  # skipped: a missing turn for the next utterance
            collector.skip(csv_path.with_name(f"{csv_path.name}:{row['line']}"), "empty utterance text and no media file")
            continue
        missing = turn - previous.get(dialogue, -1) - 1
        previous[dialogue] = turn
        if missing:
            gaps.add(dialogue)
        collector.add(Clip(
            path=path if path is not None else csv_path,
            dataset=DATASET,
            emotion=row.pop("emotion"),
            speaker=row.pop("speaker"),
            take=f"{split}_dia{dialogue}_utt{turn}",
            modalities=_modalities(path, text is not None),
            fields={**row, "missing_before": missing},
            text=text,
            dialogue=f"{split}:{dialogue}",
            turn=turn,
            split=split,
        ))
    if gaps:
        collector.result.warnings.append(
            f"{csv_path}: {len(gaps)} dialogue(s) have missing turns (kept in order; see fields['missing_before'])"
        )


def read_meld(root: str | Path, *, strict: bool = False, splits: Iterable[str] | None = None) -> ScanResult:
    """Read MELD's annotation CSVs (and its clips, when present) under ``root``.

    ``splits`` restricts the reading to some of ``"train"``, ``"dev"``, ``"test"`` (default: every
    split whose CSV is there). Clips come in split, dialogue and turn order. See the module doc.
    """
    root_path = check_root(root, DATASET)
    wanted = tuple(SPLITS if splits is None else ([splits] if isinstance(splits, str) else splits))
    unknown = sorted(set(wanted) - set(SPLITS))
    if unknown:
        raise DatasetError(f"MELD splits are {', '.join(SPLITS)}, not {unknown}", root_path)
    present = [s for s in SPLITS if s in wanted and (root_path / CSV_NAMES[s]).is_file()]
    if not present:
        names = ", ".join(CSV_NAMES[s] for s in wanted)
        raise DatasetError(f"no MELD annotation CSV ({names}) in this folder", root_path)
    if splits is not None and len(present) < len(set(wanted)):
        missing = [CSV_NAMES[s] for s in wanted if s not in present]
        raise DatasetError(f"MELD split(s) asked for but not here: {', '.join(missing)}", root_path)
    collector = ScanCollector(DATASET, root_path, strict=strict)
    for split in present:
        _read_split(root_path, split, collector)
    return collector.result
