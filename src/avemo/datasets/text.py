"""Normalising the text of utterances read from corpora (MELD's CSVs, IEMOCAP's transcriptions).

Corpus text is often damaged on its way from subtitles to CSV. MELD's public CSVs hold
*mojibake*: UTF-8 bytes read as Latin-1 / Windows-1252 and written again (``"Iâ\\x80\\x99m"`` for
``"I’m"``), and lone Windows-1252 bytes read as Latin-1 (``"I\\x92m"``). :func:`normalise_text`
repairs both, applies Unicode NFKC (``"…"`` -> ``"..."``), folds typographic quotes and dashes
to ASCII (so that the same sentence gives the same tokens whichever copy of a corpus it comes
from) and collapses white space. :func:`speaker_prefixed` writes an utterance as ``"Speaker: text"``
(the ``speaker_prefix`` option of a model's text input, :class:`~avemo.models.InputSpec`).
"""

from __future__ import annotations

import re
import unicodedata

#: code points of the C1 control block: never text, the trace of a Windows-1252 byte read as Latin-1
_C1 = re.compile("[\u0080-\u009f]")
#: a run of characters that Windows-1252 / Latin-1 decoding makes of the bytes of UTF-8 text
_MOJIBAKE = re.compile("[\u0080-\u00ff\u20ac\u201a-\u203a\u2122\u0152\u0153\u0160\u0161\u017d\u017e\u0178\u02c6\u02dc\u0192]{2,}")
_ASCII_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
})


def _as_byte(ch: str) -> bytes:
    """The byte a Windows-1252 (else Latin-1) decoder turned into ``ch``."""
    try:
        return ch.encode("cp1252")
    except UnicodeEncodeError:
        return ch.encode("latin-1")


def _repair_run(match: re.Match[str]) -> str:
    run = match.group()
    try:
        return b"".join(_as_byte(ch) for ch in run).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return run  # real accented text ("café"), not UTF-8 read as bytes


def _c1_as_cp1252(match: re.Match[str]) -> str:
    return bytes([ord(match.group())]).decode("cp1252", errors="replace").replace("\ufffd", "")


def normalise_text(text: str) -> str:
    """Repaired, NFKC-normalised, ASCII-punctuated text on one line (see the module doc)."""
    text = _MOJIBAKE.sub(_repair_run, text)
    text = _C1.sub(_c1_as_cp1252, text)
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_FOLD)
    return " ".join(text.split())


def speaker_prefixed(text: str, speaker: str | None) -> str:
    """``"Speaker: text"``: the utterance as EmoBERTa feeds it to its encoder (Kim & Vossen, "EmoBERTa:
    Speaker-Aware Emotion Recognition in Conversation with RoBERTa", 2021, §3), so that a text model
    sees who speaks, in the current utterance and in its dialogue context. ``text`` unchanged when
    there is no speaker (None or blank). The speaker is the reader's :attr:`~avemo.datasets.Clip.speaker`:
    a name for MELD (``"Ross"``), an id for corpora without names (IEMOCAP's ``"Ses01F"``)."""
    name = " ".join(str(speaker or "").split())
    return f"{name}: {text}" if name else text
