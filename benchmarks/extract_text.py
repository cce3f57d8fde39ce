"""Text feature extraction (all-MiniLM-L6-v2) over MELD's utterances, cold and warm cache.

Runs the real command (``avemo extract --dataset meld --root DIR -f minilm,minilm_tokens``) in a
fresh process each time, so start-up, imports and the model load are included. ``--splits dev``
(the default) embeds the 1,109 dev utterances; ``--splits train,dev`` all 11,098.

    python benchmarks/extract_text.py [--root ../shared/data/meld] [--splits dev]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, header, timed_extract, write_section  # noqa: E402


def run(root: Path, features: str, cache: Path) -> tuple[float, dict]:
    return timed_extract(["--dataset", "meld", "--root", str(root), "-f", features], cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "meld")
    ap.add_argument("--splits", default="dev", help="comma-separated MELD splits to embed")
    ap.add_argument("--features", default="minilm,minilm_tokens")
    args = ap.parse_args()
    lines = header("Text feature extraction: MELD utterances, all-MiniLM-L6-v2", ("tokenizers", "safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "meld"  # only the CSVs of the splits asked for
        data.mkdir()
        for split in args.splits.split(","):
            shutil.copy(args.root / f"{split}_sent_emo.csv", data)
        cache = Path(tmp) / "cache"
        cold, s_cold = run(data, args.features, cache)
        warm, s_warm = run(data, args.features, cache)
    n = s_cold["files"]
    lines += [
        f"`avemo extract --dataset meld --root DIR -f {args.features}` on MELD {args.splits} ({n} utterances) "
        "in a fresh process, wall time including start-up and the model load; one process (the text encoder "
        "runs batched, 64 texts at a time, in order of length):",
        "",
        "| cache | utterances | computed | from cache | failed | wall (s) | utterances/s |",
        "|---|---|---|---|---|---|---|",
        f"| cold | {n} | {s_cold['computed']} | {s_cold['cached']} | {len(s_cold['failed'])} | {cold:.1f} | {n / cold:.1f} |",
        f"| warm | {s_warm['files']} | {s_warm['computed']} | {s_warm['cached']} | {len(s_warm['failed'])} | "
        f"{warm:.1f} | {n / warm:.0f} |",
        "",
        "A cold run finds some entries in the cache already: utterances said more than once (\"Yeah.\", "
        "\"Okay.\") are embedded once, keyed by their text. The load average above is that of a machine "
        "shared with other jobs: the figures are indicative.",
    ]
    path = write_section("extract_text", lines)
    print("\n".join(lines))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
