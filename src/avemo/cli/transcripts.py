"""Transcripts by speech recognition (``--transcribe``) in ``extract``, ``train`` and ``evaluate``:
whether to transcribe, what was transcribed, how to give text to takes that have none."""

from __future__ import annotations

from collections.abc import Collection

from rich.markup import escape

from avemo.cli.app import console_err
from avemo.errors import AvemoError


def _say_transcribed(record: dict | None) -> None:
    """One line on stderr per corpus transcribed: how many takes speech recognition transcribed,
    read from the cache, found without speech (:mod:`avemo.training.transcripts`)."""
    if not record:
        return
    for name, counts in (record.get("corpora") or {"": record}).items():
        no_audio = counts.get("no_audio")
        no_audio = f", {_counted(no_audio, 'file')} without an audio track" if no_audio else ""
        console_err.print(escape(f"transcripts{' of ' + name if name else ''} by speech recognition: "
                                 f"{_counted(counts['transcribed'], 'take')} transcribed, {counts['cached']} from the "
                                 f"cache, {counts['no_speech']} without speech, "
                                 f"{_counted(counts['skipped'], 'file')} skipped{no_audio}"))


def _counted(n: int, noun: str) -> str:
    """``1 take``, ``2 takes``, ``0 takes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _worth_transcribing(asked: bool, modalities: Collection[str], what: str, option: str = "--transcribe") -> bool:
    """Whether to transcribe: ``asked`` and ``what`` (the model, the features) reads text; asked for
    ``what`` that reads none (only ``modalities``), said in one line and False: transcripts nobody reads
    would cost the recogniser's time (about half a second a clip on a CPU) for nothing."""
    if asked and "text" not in modalities:
        console_err.print(escape(f"{option} ignored: {what} reads no text (only {', '.join(sorted(modalities))}); "
                                 "no clip is transcribed"))
        return False
    return asked


def _say_text_unread(takes: Collection, modalities: Collection[str], what: str) -> None:
    """One line on stderr when takes carry text (a labels CSV's text column, a corpus's transcripts) and
    ``what`` (the model) reads none (only ``modalities``): the text was left aside without a word."""
    with_text = sum(any("text" in m for m in take.clips) for take in takes)
    if with_text and "text" not in modalities:
        console_err.print(escape(f"the text of {with_text} of the {len(takes)} takes (a text column, transcripts) is not "
                                 f"read: {what} reads no text (only {', '.join(sorted(modalities))})"))


def _transcribe_hint(exc: AvemoError, data) -> str:
    """For a refusal of takes without text, when they were not transcribed: how to give them text ("" else)."""
    no_text = "has no text" in exc.reason or "takes have no text" in exc.reason  # some takes, or every take
    if data.transcripts is not None or not no_text or not any("audio" in t for t in data.takes):
        return ""
    return "; --transcribe gives the clips with audio a transcript by speech recognition"
