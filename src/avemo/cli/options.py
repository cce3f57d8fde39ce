"""The option declarations (``Annotated`` aliases) and help texts that several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avemo.serving.settings import ServeSettings  # light: the web framework loads in `serve` only

RootOpt = Annotated[Path, typer.Option("--root", "-r", help="The dataset folder.")]
TableOpt = Annotated[
    Path | None, typer.Option("--visual-table", help="OpenFace AU means CSV (one row per video), e.g. RAVDESS-AU.")
]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Feature cache folder (default: ~/.cache/avemo/features).")]
TRANSCRIBE_HELP = ("Give every clip that has audio and no transcript one by offline speech recognition (Whisper-base, "
                   "as predict --transcribe), so that text models work on corpora without transcripts (ravdess, "
                   "crema_d, emodb, a folder without a text column). Clips that carry a transcript (meld, iemocap, "
                   "a text column) keep it. Transcripts are cached with the features (--cache); a file without "
                   "speech gets no text (text models leave it out), one whose audio cannot be decoded is skipped. "
                   "Ignored, in one line, when the model (extract: --features) reads no text.")
TranscribeOpt = Annotated[bool, typer.Option("--transcribe", help=TRANSCRIBE_HELP)]
TrainTranscribeOpt = Annotated[bool, typer.Option("--transcribe", help=TRANSCRIBE_HELP + " The checkpoint records it, "
                                                   "and `avemo evaluate` then transcribes the same way.")]
EvalTranscribeOpt = Annotated[
    bool | None, typer.Option("--transcribe/--no-transcribe", show_default="as the checkpoint was trained",
                              help=TRANSCRIBE_HELP + " By default on when the checkpoint's model reads text and its "
                                                     "training text came from speech recognition (train --transcribe).")
]


def _cores() -> int:
    """The CPU cores this process may use (its affinity mask: a container's or a job's share)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _at_least_one_worker(value: int | None) -> int | None:
    """Every command's ``--workers``: at least 1 where given (train and evaluate read 0 as their default,
    the machine's cores, where extract refused it)."""
    if value is not None and value < 1:
        from avemo.errors import ConfigError

        raise ConfigError(f"--workers must be at least 1, got {value}")
    return value


ExtractWorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-j", show_default=f"the machine's cores, {_cores()} here",
                 callback=_at_least_one_worker,
                 help="Parallel processes extracting the features that are not in the cache yet."),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option("--labels", help="Labels CSV for --dataset folder (default: labels.csv in the folder): columns path "
                 "(or file), emotion (or label), speaker, optional take, modality, text; its paths are relative to "
                 "the dataset folder, wherever the CSV is."),
]
SpeakerPatternOpt = Annotated[
    str | None,
    typer.Option("--speaker-pattern", metavar="REGEX",
                 help="--dataset folder without a labels CSV, of one folder per emotion: the speaker is the one "
                      "group of REGEX in each file's name (e.g. '^(\\d\\d)' for 03a01Fa.wav), for <emotion>/FILE "
                      "(<emotion>/<speaker>/ and <speaker>/<emotion>/ folders need none)."),
]
MediaOpt = Annotated[
    Path | None, typer.Option("--media", help="IEMOCAP: the folder `avemo prepare --dataset iemocap` wrote; its utterance "
                                              "videos make the clips audio+video(+text) (without it: audio+text).")
]

#: the model options of `predict` and `serve` (one meaning, one default: ServeSettings')
MODEL_HELP = ("A checkpoint from `avemo train` to use instead of the bundled model. Its audio input has the "
              "bundle's speech gate (voice-activity detection, default thresholds: no speech, no audio vote), "
              "but no crowd gate and no tau of its own (0.5).")
ENGINE_HELP = ("torch or onnx: the bundled model's encoders and fusion in onnxruntime, without torch, or a --model "
               "checkpoint's graph in onnxruntime (the same features); the graphs are exported once, on first "
               "use, to $AVEMO_ONNX_DIR or the cache (avemo export).")
DEVICE_HELP = "auto (GPU when present), cpu, cuda..."
_SERVE = ServeSettings()  # the defaults shown by `serve --help` and `predict --help`
