"""Make tests/data/whisper_reference.npz: Whisper-base encoder outputs computed by CTranslate2.

The test suite checks our PyTorch port of the encoder (avemo.features.audio.whisper_encoder) against
these outputs. Run once, in an environment with ctranslate2 installed (it is not a project
dependency), e.g.::

    pip install --target /tmp/ct2lib --no-deps ctranslate2==4.8.5
    PYTHONPATH=/tmp/ct2lib python benchmarks/make_whisper_reference.py

Input: 1.5 s of the synthetic "voice" signal of avemo.media.synth (seed 3, 180 Hz), padded
to 30 s as CTranslate2's Whisper expects; stored: the audio and the encoder output (after
the final LayerNorm) for the first 80 frames (1.6 s).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from avemo.features.audio.whisper_encoder import WhisperEncoder
from avemo.features.audio.whisper_weights import package_weight_parts
from avemo.media.synth import synth_audio

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "whisper_reference.npz"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Takes no options.").parse_args()
    import ctranslate2  # not a project dependency: see above

    y = synth_audio(1.5, 16000, "voice", seed=3, pitch=180.0)[:, 0]
    padded = np.zeros(16000 * 30, dtype=np.float32)
    padded[: len(y)] = y
    encoder = WhisperEncoder.from_ct2()
    with torch.inference_mode():
        mel = encoder.log_mel(torch.from_numpy(padded)[None]).numpy()  # (1, 80, 3000)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        with open(model_dir / "model.bin", "wb") as out:
            for part in package_weight_parts():
                out.write(part.read_bytes())
        config = package_weight_parts()[0].parent / "config.json"
        (model_dir / "config.json").write_bytes(config.read_bytes())
        for name in ("tokenizer.json", "vocabulary.txt"):
            src = package_weight_parts()[0].parent / name
            if src.exists():
                (model_dir / name).write_bytes(src.read_bytes())
        model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
        encoded = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), to_cpu=True)
        reference = np.array(encoded)[0, :80]
    np.savez_compressed(OUT, audio=y.astype(np.float32), encoded=reference.astype(np.float32))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), ctranslate2 {ctranslate2.__version__}")


if __name__ == "__main__":
    main()
