"""Word error rate of ``avemo.features.audio.asr.transcribe`` on the real recordings of ``../shared/data``.

Every corpus here is read speech of a few fixed sentences, so each clip's reference text is known:

* RAVDESS speech audio (``ravdess/speech_audio``, 20 actors): statement 01 "Kids are talking by
  the door", 02 "Dogs are sitting by the door" (Livingstone & Russo 2018, file naming).
* RAVDESS video ``01-01-07-02-02-01-01.mp4`` (actor 01, disgust, strong): the clip of the unit test.
* CREMA-D (``crema_d/VideoFlash``, ``crema_d/AudioMP3``): the sentence code of the file name, e.g.
  DFA "Don't forget a jacket" (the twelve sentences of the CREMA-D README, Cao et al. 2014).
* EmoDB (``emodb/wav``, ``emodb_dev/wav``, German): the text code, e.g. a01 "Der Lappen liegt auf
  dem Eisschrank" (the ten sentences of Burkhardt et al. 2005, "A Database of German Emotional
  Speech", Interspeech, Table 1). The copies here are cut at 2.0 s, which ends most sentences
  early, so a transcript is scored against the beginning of its sentence that fits it best
  (and "exact" means that beginning was transcribed exactly).

Texts are compared after lower-casing and removing punctuation (apostrophes too: "don't" = "dont").
Numbers are not normalised. Reported per corpus: WER (word edits / reference words), the share of
clips transcribed exactly, the share left empty, and (when the language is detected) the share
whose language is right. Each ``--variant`` (comma-separated ``field=value`` of
``TranscribeConfig``; ``vad.threshold=0.6`` reaches the VAD) is evaluated on the same clips, so
settings can be compared; by default the actor of the test clip (RAVDESS 01) is left out, so
that settings are not chosen on it.

    python benchmarks/transcribe_accuracy.py [--corpora ravdess,crema_d,emodb,target] [--limit 300]
        [--variant context=4] [--variant context=30,compute_type=float32] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from report import header  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
CREMA_D_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before", "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
EMODB_SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank", "a02": "Das will sie am Mittwoch abgeben",
    "a04": "Heute abend könnte ich es ihm sagen",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück",
    "a07": "In sieben Stunden wird es soweit sein", "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen",
}
TARGET = "ravdess/videos/01-01-07-02-02-01-01.mp4"


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped, every other non-word character a space, spaces collapsed."""
    text = text.lower().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def word_errors(reference: str, hypothesis: str, prefix: bool = False) -> tuple[int, int]:
    """(word edits, reference words): the Levenshtein distance between the word sequences; with
    ``prefix``, against the beginning of the reference that fits best (for clips cut short)."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    best = (len(hyp) + 1, 1)  # at least the first word
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
        if row[-1] <= best[0] or i == 1:
            best = (row[-1], i)
    return best if prefix else (row[-1], len(ref))


def clips(data: Path, corpora: list[str], limit: int, keep_target_actor: bool) -> list[tuple[str, Path, str, str]]:
    """``(corpus, path, reference, language)`` of every clip of ``corpora`` (RAVDESS: a seeded sample of ``limit``)."""
    out = []
    if "target" in corpora:
        out.append(("target", data / TARGET, RAVDESS_STATEMENTS["02"], "en"))
    if "ravdess" in corpora:
        paths = sorted((data / "ravdess" / "speech_audio").glob("Actor_*/03-01-*.flac"))
        if not keep_target_actor:
            paths = [p for p in paths if not p.stem.endswith("-01")]
        if limit and len(paths) > limit:
            paths = [paths[i] for i in sorted(np.random.default_rng(0).choice(len(paths), limit, replace=False))]
        out += [("ravdess", p, RAVDESS_STATEMENTS[p.stem.split("-")[4]], "en") for p in paths]
    if "crema_d" in corpora:
        paths = sorted([*(data / "crema_d" / "VideoFlash").glob("*.flv"), *(data / "crema_d" / "AudioMP3").glob("*.mp3")])
        out += [("crema_d", p, CREMA_D_SENTENCES[p.stem.split("_")[1]], "en") for p in paths]
    if "emodb" in corpora:
        paths = sorted([*(data / "emodb" / "wav").glob("*.wav"), *(data / "emodb_dev" / "wav").glob("*.flac")])
        out += [("emodb", p, EMODB_SENTENCES[p.stem[2:5]], "de") for p in paths]
    return out


def parse_variant(text: str):
    """``"context=4,vad.pad=0.1"`` -> a TranscribeConfig."""
    from avemo import config as cfg
    from avemo.features.audio.asr import TranscribeConfig
    from avemo.features.audio.vad import VadConfig

    top: dict = {}
    vad: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = item.partition("=")
        (vad if key.startswith("vad.") else top)[key.removeprefix("vad.")] = value
    def typed(cls, values: dict) -> dict:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out = {}
        for k, v in values.items():
            default = fields[k].default
            out[k] = None if v == "none" else v if isinstance(default, str) or default is None else \
                (v.lower() == "true") if isinstance(default, bool) else type(default)(v)
        return out

    return cfg.replace(TranscribeConfig(), **typed(TranscribeConfig, top), **({"vad": typed(VadConfig, vad)} if vad else {}))


def evaluate(items, audio: dict, config, with_language: bool) -> tuple[dict, list]:
    from avemo.features.audio.asr import transcribe

    totals: dict[str, dict[str, float]] = {}
    rows = []
    for corpus, path, reference, language in items:
        t = time.perf_counter()
        result = transcribe(audio[path], language=None if with_language else language, config=config)
        seconds = time.perf_counter() - t
        ref, hyp = normalise(reference), normalise(result.text)
        errors, words = word_errors(ref, hyp, prefix=corpus == "emodb")
        ref = " ".join(ref.split()[:words])
        s = totals.setdefault(corpus, dict(clips=0, words=0, errors=0, exact=0, empty=0, language=0, seconds=0.0))
        s["clips"] += 1
        s["words"] += words
        s["errors"] += errors
        s["exact"] += ref == hyp
        s["empty"] += not hyp
        s["language"] += result.language == language
        s["seconds"] += seconds
        rows.append((corpus, path.name, reference, result.text, result.language, errors))
    return totals, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--corpora", default="target,ravdess,crema_d,emodb")
    parser.add_argument("--limit", type=int, default=300, help="RAVDESS clips (seeded sample); 0 for all")
    parser.add_argument("--keep-target-actor", action="store_true", help="also use RAVDESS actor 01")
    parser.add_argument("--variant", action="append", default=[], help="TranscribeConfig fields, e.g. context=4,beam_size=5")
    parser.add_argument("--known-language", action="store_true", help="give each clip its language instead of detecting it")
    parser.add_argument("--show-errors", type=int, default=0, help="print up to N wrong transcripts per variant")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "transcription.md",
                        help="the Markdown report (default docs/results/transcription.md)")
    args = parser.parse_args()

    from avemo.media import load_audio

    items = clips(args.shared_data, args.corpora.split(","), args.limit, args.keep_target_actor)
    audio = {path: load_audio(path, sr=16000) for _, path, _, _ in items}
    variants = args.variant or ["default"]
    lines = header("Transcription accuracy (Whisper-base, CTranslate2)", ("ctranslate2", "onnxruntime"))
    from avemo import config as cfg
    from avemo.features.audio.asr import TranscribeConfig

    lines += [f"- Language: {'given' if args.known_language else 'detected'} per clip; RAVDESS sample: "
              f"{args.limit or 'all'} clips{'' if args.keep_target_actor else ' (actor 01 left out)'}",
              f"- Default settings (each variant changes the fields it names): `{cfg.to_dict(TranscribeConfig())}`",
              "- WER: word edits / reference words after lower-casing and removing punctuation; exact: share of "
              "clips transcribed exactly; empty: share with no transcript; EmoDB clips are cut at 2.0 s and "
              "scored against the beginning of their sentence that fits best.", "",
              "| variant | corpus | clips | WER | exact | empty | language right |", "|---|---|---|---|---|---|---|"]
    for variant in variants:
        config = parse_variant("" if variant == "default" else variant)
        totals, rows = evaluate(items, audio, config, not args.known_language)
        for corpus, s in totals.items():
            lines.append(f"| {variant} | {corpus} | {s['clips']} | {s['errors'] / max(1, s['words']):.3f} | "
                         f"{s['exact'] / s['clips']:.2f} | {s['empty'] / s['clips']:.2f} | "
                         f"{s['language'] / s['clips']:.2f} |")
            print(lines[-1], f"(smoke: {s['seconds'] / s['clips']:.3f} s/clip, not a timing)", flush=True)
        for corpus, name, reference, text, language, _ in [r for r in rows if r[5]][: args.show_errors]:
            print(f"    {corpus} {name}: {reference!r} -> {text!r} [{language}]")
        if any(r[0] == "target" for r in rows):
            target = next(r for r in rows if r[0] == "target")
            lines.append(f"|  | (target clip says) |  | {target[3]!r} |  |  |  |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
