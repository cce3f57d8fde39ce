"""Speaker-level normalisation at prediction time: many clips of one speaker, one head trained for it.

A voice differs from another more than one emotion of a voice from the next; a head trained with
each speaker's clip embeddings z-normalised with that speaker's own mean and std
(``TrainConfig.speaker_norm``, :meth:`~avemo.models.normalization.Normalizer.per_speaker`) compares
a clip with the speaker's other clips instead of with the training speakers. At prediction time it
needs several clips of the speaker (an interview cut in clips, a call-centre agent, a study
participant), told by the caller: ``Predictor.predict_many(paths, speakers={path: id})``, ``avemo
predict FILES --group-by-speaker`` (all files are one speaker) or ``--speakers speakers.csv``
(columns ``file,speaker``, :func:`read_speakers_csv`), or the REST API's ``POST /v1/predict/batch``
(a ``speaker`` field per file, or ``group_by_speaker``: :mod:`avemo.serving.batch`). A bundle offers it when its ``model.json``
has ``config.speaker_norm`` (:class:`~avemo.inference.bundle.SpeakerNormConfig`: the head's folder,
its own temperature and ``tau``, and ``min_clips``); the model card says what it measured.

Two passes (:func:`normalise_speakers`):

1. every file is predicted as alone (:meth:`Predictor.predict
   <avemo.inference.predictor.Predictor.predict>`), keeping its clip embedding (the vector the audio
   head reads, the ``whisper_base`` feature the trainer reads) and its video expert's pooled clip
   probabilities (:class:`Evidence`);
2. for each speaker with at least ``min_clips`` files whose audio was used, those embeddings are
   z-normalised with the speaker's own statistics by the Normalizer's own code, the
   speaker-normalised head gives logits, its temperature scales them, and the fusion graph
   (:mod:`avemo.inference.fusion`, the bundle's weights unchanged) combines them again with the
   file's video probabilities; ``uncertain`` uses the head's own ``tau``. The fusion graph divides
   audio logits by the main head's temperature T, so the head's logits z are given to it as
   ``z * T / T_s``: ``softmax(z * T / T_s / T) = softmax(z / T_s)``, the head's own calibration.

Files whose audio was not used (no speech, a crowd, no audio track) and files that failed are not
counted in the statistics and keep their result. A file given twice under two names counts once:
the CLI and the REST batch find such copies by content (:func:`content_copies`) and predict them
once (``predict_many`` itself predicts each path it is given). The files of a speaker with fewer usable clips
than ``min_clips`` keep their single-clip result, with a warning naming the speaker, the count
and ``min_clips``. An interrupted batch (Ctrl-C, :class:`KeyboardInterrupt` in
:meth:`Predictor.predict_many <avemo.inference.predictor.Predictor.predict_many>`) keeps its files
done: the speakers whose files were all analysed get their speaker-normalised results (the same as
uninterrupted: each speaker's statistics are its own), the files of the others their single-clip
result with ``speaker_normalised: false`` and a warning saying the batch was interrupted. The timeline windows keep the single-clip head: a window's embedding (the mean
over its frames) is not what the speaker-normalised head was trained on.

Caveat: the statistics assume the speaker's clips mix emotions. A speaker whose clips are all one
emotion is centred away from it (all-angry clips look neutral once their own mean is removed).

Both engines: with ``engine="onnx"`` the head runs from its exported graph (``audio_spknorm_head.onnx``,
written next to ``audio_head.onnx``) and the per-speaker statistics come from
:func:`avemo.standardise.per_speaker` (numpy; the trainer's ``Normalizer.per_speaker`` runs the same
function): a grouped batch on the onnx engine imports no torch, as an ungrouped one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avemo.datasets.csvfile import read_user_csv
from avemo.errors import CheckpointError, ConfigError, DatasetError
from avemo.inference.abstention import uncertain
from avemo.inference.backends import fuse, labelled
from avemo.inference.bundle import BundleConfig, SpeakerNormConfig
from avemo.inference.engines import Engine, create_engine
from avemo.inference.fusion import decide
from avemo.inference.result import Prediction
from avemo.standardise import per_speaker

if TYPE_CHECKING:
    from avemo.inference.audio import WhisperInput

log = logging.getLogger(__name__)

SPKNORM_HEAD_FILE = "audio_spknorm_head.onnx"
#: the columns of a ``--speakers`` CSV
CSV_COLUMNS = ("file", "speaker")
#: the speaker id ``avemo predict --group-by-speaker`` gives every file
GROUP_SPEAKER = "speaker"


@dataclass(frozen=True)
class Evidence:
    """What the second pass needs of a file's first: its clip embedding (None when its audio was not
    used), its video expert's pooled clip probabilities (None when its video was not used) and
    whether its audio heard less than the bundle's ``min_speech`` (its answer stays uncertain)."""

    embedding: np.ndarray | None
    video: np.ndarray | None
    short_speech: bool = False


class SpeakerHead:
    """The bundle's speaker-normalised audio head: ``head`` (an engine, embeddings (B, width) ->
    logits (B, C), the head's global standardisation included), re-fused by the predictor's
    ``fusion`` engine, whose audio temperature is ``audio_temperature``."""

    def __init__(self, config: SpeakerNormConfig, input_name: str, head: Engine, fusion: Engine,
                 audio_temperature: float, labels: Sequence[str]):
        self.config = config
        self.input_name = input_name
        self.head = head
        self.fusion = fusion
        self.audio_temperature = float(audio_temperature)
        self.labels = tuple(labels)

    def logits(self, embeddings: Sequence[np.ndarray], speakers: Sequence[str]) -> np.ndarray:
        """(n, C) logits of the head on clip embeddings, each z-normalised with the statistics of all the
        embeddings of its speaker given here (:func:`avemo.standardise.per_speaker`, the step of the
        trainer's :meth:`Normalizer.per_speaker <avemo.models.normalization.Normalizer.per_speaker>`;
        numpy only, so that the onnx engine imports no torch)."""
        pre = per_speaker(list(embeddings), list(speakers), "vector")
        return self.head(embedding=np.stack(pre))["logits"]

    def fused(self, logits: np.ndarray, video: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(fused clip probabilities, the audio's own calibrated probabilities) of one file from the
        head's logits (C,) and the video expert's pooled probabilities (C,) or None."""
        scaled = np.asarray(logits, dtype=np.float32)[None] * (self.audio_temperature / self.config.temperature)
        c = len(self.labels)
        both = fuse(self.fusion, scaled, None if video is None else np.asarray(video)[None], 1, c)[0]
        return both, fuse(self.fusion, scaled, None, 1, c)[0]

    def renormalised(self, p: Prediction, logits: np.ndarray, evidence: Evidence, speaker: str,
                     clips: int) -> Prediction:
        """``p`` with the clip's result of the speaker-normalised head (the timeline unchanged)."""
        both, alone = self.fused(logits, evidence.video)
        audio = dataclasses.replace(p.modalities["audio"], probabilities=labelled(alone, self.labels),
                                    speaker_normalised=True, speaker_clips=clips)
        return dataclasses.replace(
            p, emotion=decide(both, self.labels, calm_decided=True), probabilities=labelled(both, self.labels),
            modalities={**p.modalities, "audio": audio}, uncertain=evidence.short_speech or bool(uncertain(both, self.config.tau)),
            speaker=speaker,
        )


def normalise_speakers(predictions: Sequence[Prediction | None], evidence: Sequence[Evidence | None],
                       speakers: Sequence[str | None], head: SpeakerHead,
                       unfinished: Mapping[str, tuple[int, int]] | None = None) -> list[Prediction | None]:
    """The second pass (see the module docstring): each file's prediction (None: it failed), its
    :class:`Evidence` and its speaker (None: none given) -> the predictions, speaker-normalised where
    the speaker has at least ``min_clips`` files with usable audio.

    ``unfinished``: ``{speaker: (files analysed, files in the batch)}`` of the speakers whose files
    were not all analysed (an interrupted batch): theirs keep the single-clip result, with a warning
    saying so (statistics of part of a speaker's clips are not those the whole batch would give)."""
    unfinished = unfinished or {}
    usable: dict[str, list[int]] = {}
    for i, (p, e, s) in enumerate(zip(predictions, evidence, speakers, strict=True)):
        if p is not None and s is not None:
            usable.setdefault(s, [])
            if e is not None and e.embedding is not None:
                usable[s].append(i)
    minimum = head.config.min_clips
    grouped = [i for s, idx in usable.items() if len(idx) >= minimum and s not in unfinished for i in idx]
    logits = head.logits([evidence[i].embedding for i in grouped], [speakers[i] for i in grouped]) if grouped else []
    by_file = dict(zip(grouped, logits, strict=True))
    out: list[Prediction | None] = []
    for i, (p, s) in enumerate(zip(predictions, speakers, strict=True)):
        if p is None or s is None:
            out.append(p)
        elif i in by_file:
            out.append(head.renormalised(p, by_file[i], evidence[i], s, len(usable[s])))
        else:
            out.append(_single_clip(p, s, len(usable[s]), _why_single(s, len(usable[s]), minimum, unfinished)))
    return out


def _why_single(speaker: str, clips: int, minimum: int, unfinished: Mapping[str, tuple[int, int]]) -> str | None:
    """The warning of a file of ``speaker`` that keeps its single-clip result (None: its group is large
    enough and whole, but its own audio was not used: its audio reason says why)."""
    if speaker in unfinished:
        done, total = unfinished[speaker]
        return (f"speaker {speaker!r}: interrupted after {done} of the speaker's {total} files: single-clip result, "
                "not speaker-normalised")
    if clips < minimum:
        return (f"speaker {speaker!r}: {clips} clip{'' if clips == 1 else 's'} with usable audio, fewer than "
                f"min_clips = {minimum}: single-clip result")
    return None


def _single_clip(p: Prediction, speaker: str, clips: int, warning: str | None) -> Prediction:
    """``p`` kept as predicted alone, marked with its speaker, with ``warning`` (when not None)."""
    audio = dataclasses.replace(p.modalities["audio"], speaker_normalised=False, speaker_clips=clips)
    warnings = p.warnings if warning is None else (*p.warnings, warning)
    return dataclasses.replace(p, modalities={**p.modalities, "audio": audio}, speaker=speaker, warnings=warnings)


# ----------------------------------------------------------------------------- loading
def speaker_checkpoint(bundle: Path, config: BundleConfig, main_input: WhisperInput | None):
    """The bundle's speaker-normalised head checkpoint, checked: present, trained with speaker
    normalisation, a head on the same ``whisper_base`` embedding as the main head (``main_input``,
    :func:`~avemo.inference.audio.whisper_input`), over the bundle's labels. One-line CheckpointError."""
    from avemo.datasets.labels import RAVDESS
    from avemo.inference.audio import whisper_input
    from avemo.models.checkpoint import load_checkpoint

    folder = bundle / config.speaker_norm.audio
    if not folder.is_dir():
        raise CheckpointError("the bundle's speaker-normalised audio head (model.json config.speaker_norm.audio) "
                              "is missing", folder)
    ckpt = load_checkpoint(folder)
    if not ckpt.normalizer.speaker_norm:
        raise CheckpointError("config.speaker_norm names a head that was not trained with speaker-level "
                              "normalisation (train it with speaker_norm = true)", folder)
    own = whisper_input(ckpt)
    if main_input is None or own is None or own[1:] != main_input[1:]:
        raise CheckpointError(f"the speaker-normalised head must read the main audio head's whisper_base embedding "
                              f"(layer, combine, layer_norm) {None if main_input is None else main_input[1:]}, it reads "
                              f"{None if own is None else own[1:]}", folder)
    labels = tuple(config.labels) or RAVDESS.emotions
    if tuple(ckpt.labels.emotions) != labels:
        raise CheckpointError(f"the speaker-normalised head predicts {list(ckpt.labels.emotions)}, but the bundle's "
                              f"labels are {list(labels)}", folder)
    return ckpt


def export_speaker_head(bundle: Path, config: BundleConfig, audio, out_dir: Path) -> dict[str, Any] | None:
    """Export the bundle's speaker-normalised head next to the main head's graph (None: the bundle has
    none); returns its manifest entry (the graph's file, the input name, the labels)."""
    from avemo.inference.audio import export_head, whisper_input

    if config.speaker_norm is None:
        return None
    ckpt = speaker_checkpoint(bundle, config, whisper_input(audio.ckpt))
    export_head(ckpt, out_dir / SPKNORM_HEAD_FILE)
    return {"head": SPKNORM_HEAD_FILE, "input": whisper_input(ckpt)[0], "labels": list(ckpt.labels.emotions)}


def load_speaker_head(bundle: Path, config: BundleConfig, audio, fusion: Engine, *, engine: str,
                      onnx_dir: Path | None, manifest: Mapping[str, Any] | None, device: str) -> SpeakerHead | None:
    """The bundle's :class:`SpeakerHead` on ``engine`` (None: the bundle has none). The torch engine
    reads and checks its checkpoint; the onnx engine runs the graph the export wrote (checked then)."""
    from avemo.inference.audio import WhisperAudioExpert, whisper_head_module, whisper_input

    spk = config.speaker_norm
    if spk is None:
        return None
    if not isinstance(audio, WhisperAudioExpert):
        raise CheckpointError(f"a speaker-normalised head needs a whisper_base main audio head, not {audio.name}",
                              bundle / config.audio)
    if engine == "onnx":
        entry = (manifest or {}).get("speaker_norm")
        if not entry:
            raise CheckpointError("the ONNX export has no speaker-normalised head (export the bundle again)", onnx_dir)
        head = create_engine("onnx", onnx_path=Path(onnx_dir) / entry["head"], input_names=["embedding"])
        name = entry["input"]
    else:
        ckpt = speaker_checkpoint(bundle, config, whisper_input(audio.ckpt))
        name = whisper_input(ckpt)[0]
        head = create_engine(engine, module=whisper_head_module(ckpt), input_names=["embedding"],
                             output_names=["logits"], device=device)
    return SpeakerHead(spk, name, head, fusion, config.fusion.audio_temperature, audio.labels)


# ----------------------------------------------------------------------------- who is who
def content_copies(paths: Sequence[str | Path | None], speakers: Sequence[str | None] | None = None,
                   names: Sequence[str] | None = None, *, remember: bool = True) -> dict[int, int]:
    """``{k: j}`` for each file ``k`` of ``paths`` whose content (its SHA-256,
    :func:`avemo.digest.file_digest`) is that of an earlier file ``j`` (the first of them): the same
    clip given twice (under two names), which a grouped batch predicts once and counts once toward
    its speaker's ``min_clips`` (``avemo predict --group-by-speaker`` / ``--speakers``, the REST
    API's batch). A path None (a file refused already) or one that cannot be read is nobody's copy:
    its own error comes when it is predicted. ``speakers``: of each path (None: no grouping); two
    copies given different speakers are a ConfigError (``names``: how it names the files, by
    default the paths). ``remember``: the digest memo's, False for files read once (uploads)."""
    from avemo.digest import file_digest
    from avemo.errors import MediaError

    first: dict[str, int] = {}
    copies: dict[int, int] = {}
    for k, path in enumerate(paths):
        if path is None:
            continue
        try:
            j = first.setdefault(file_digest(path, remember=remember), k)
        except MediaError:
            continue
        if j == k:
            continue
        if speakers is not None and speakers[k] != speakers[j]:
            shown = [str(p) for p in paths] if names is None else names
            raise ConfigError(f"{shown[j]} and {shown[k]} are the same file (the same content) with different "
                              f"speakers ({speakers[j] or 'none'}, {speakers[k] or 'none'}): give each clip once")
        copies[k] = j
    return copies


def _looked_for(file: str, target: Path) -> str:
    """Where a speakers CSV's ``file`` was looked for, and the rule for a relative one (read against the
    CSV's folder), with the file it names from the current folder when that one is there."""
    if Path(file).expanduser().is_absolute():
        return f"looked for {target}"
    said = f"looked for {target}: a relative path is read against the CSV's folder"
    here = Path(file).resolve()
    return said + (f", not the current folder, where {here} is" if here.is_file() else "")


def read_speakers_csv(path: str | Path) -> dict[Path, str]:
    """``{resolved file: speaker}`` from a CSV with the columns ``file,speaker`` (other columns are
    ignored; a relative file is read against the CSV's folder), read as a labels CSV is
    (:func:`~avemo.datasets.csvfile.read_user_csv`: ``;`` or tab separated, column names in any case,
    Windows' "ANSI" with a warning). One-line errors naming the CSV and the row or column: a missing
    file, missing columns, an empty cell, a file listed twice with two speakers."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("no such speakers CSV", path)
    header, rows = read_user_csv(path, what="the speakers CSV", warn=log.warning)
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"the speakers CSV needs the columns {','.join(CSV_COLUMNS)}; column(s) {missing} "
                           f"missing (it has {header})", path)
    out: dict[Path, str] = {}
    for row_number, values in rows:  # the header is row 1
        file, speaker = values[header.index("file")], values[header.index("speaker")]
        if not file or not speaker:
            raise DatasetError(f"row {row_number}: empty {'file' if not file else 'speaker'} cell", path)
        target = (path.parent / Path(file).expanduser()).resolve()
        if not target.is_file():
            raise DatasetError(f"row {row_number}: no such file {file!r} ({_looked_for(file, target)})", path)
        if out.get(target, speaker) != speaker:
            raise DatasetError(f"row {row_number}: {file!r} is listed with two speakers, {out[target]!r} and "
                               f"{speaker!r}", path)
        out[target] = speaker
    return out

