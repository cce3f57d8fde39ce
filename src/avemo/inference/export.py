"""ONNX export of the bundled model: the encoders, the audio head and the fusion, for onnxruntime.

``avemo export --format onnx --out DIR`` (and ``Predictor.default(engine="onnx")``, which exports
to a cache folder on first use) writes:

* ``whisper_encoder.onnx``: raw 16 kHz audio (1, samples) -> pooled Whisper states (1, frames, 512),
  log-mel front end included (:class:`~avemo.inference.audio.WhisperAudioExpert`);
* ``audio_head.onnx``: clip / window embeddings (B, 512) -> logits (B, C) over the bundle's C labels,
  standardisation included;
* ``fer_mini_xception.onnx``: faces (B, 1, 64, 64) -> FER2013 logits and probabilities (B, 7);
* ``fusion.onnx``: ``audio_logits`` (B, C), ``video_probs`` (B, C), ``present`` (B, 2) -> probabilities;
* ``audio_spknorm_head.onnx``, only for a bundle with a speaker-normalised head (``config.speaker_norm``,
  :mod:`avemo.inference.speakers`): speaker-normalised clip embeddings (B, width) -> logits (B, C);
* ``manifest.json``: which bundle (fingerprint) the graphs were made from, the file names, and
  what the onnx engine needs to know of the audio head (its name and labels), so that it runs from
  the graphs alone, without reading the checkpoint (which needs torch).

Everything outside these graphs (decoding, face detection and cropping, pooling over frames and
windows) is the same code for both engines. The graphs are traced with the TorchScript-based
exporter (``dynamo=False``), batch and time axes dynamic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avemo.inference.engines import MANIFEST, read_manifest

FUSION_FILE = "fusion.onnx"


def export_bundle(bundle_dir: str | Path, out_dir: str | Path) -> Path:
    """Export the bundle in ``bundle_dir`` to ``out_dir``, in place of the export it held
    (:func:`~avemo.inference.engines.write_export`); returns ``out_dir``."""
    from avemo.datasets.labels import RAVDESS
    from avemo.inference.audio import make_audio_expert
    from avemo.inference.bundle import bundle_fingerprint, read_bundle
    from avemo.inference.engines import export_module, write_export
    from avemo.inference.fusion import FUSION_OUTPUTS, product_of_experts
    from avemo.inference.speakers import export_speaker_head
    from avemo.inference.video import FerVideoExpert
    from avemo.models.checkpoint import load_checkpoint

    bundle_dir = Path(bundle_dir)
    config, _ = read_bundle(bundle_dir)

    def write(folder: Path) -> None:
        audio = make_audio_expert(load_checkpoint(bundle_dir / config.audio), engine="torch", device="cpu")
        files = {"audio": audio.export_onnx(folder)}
        files["video"] = FerVideoExpert(config.video, engine="torch", device="cpu").export_onnx(folder)
        c = len(config.labels or RAVDESS.emotions)
        example = {
            "audio_logits": np.zeros((2, c), np.float32),
            "video_probs": np.full((2, c), 1.0 / c, np.float32),
            "present": np.ones((2, 2), np.float32),
        }
        export_module(product_of_experts(config.fusion), folder / FUSION_FILE, example, FUSION_OUTPUTS,
                      {k: {0: "batch"} for k in [*example, *FUSION_OUTPUTS]})
        files["fusion"] = {"graph": FUSION_FILE}
        manifest = {"bundle": config.name, "version": config.version, "fingerprint": bundle_fingerprint(bundle_dir),
                    "files": files, "audio_expert": {"name": audio.name, "labels": list(audio.labels),
                                     **({"pooling": audio.pooling} if audio.pooling else {})}}
        speaker_head = export_speaker_head(bundle_dir, config, audio, folder)
        if speaker_head is not None:  # the bundle's speaker-normalised head (avemo.inference.speakers)
            files["speaker_norm"] = {"head": speaker_head["head"]}
            manifest["speaker_norm"] = speaker_head
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    return write_export(out_dir, write)  # in place of the export the folder held, another model's too


def current_export(bundle_dir: str | Path, out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir`` if it holds the graphs of this very bundle (same fingerprint, every
    file, a manifest of this version), else None (:func:`ensure_exported` would export)."""
    from avemo.inference.bundle import bundle_fingerprint, read_bundle

    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    manifest = read_manifest(out_dir)
    wanted = ["audio_expert", *(["speaker_norm"] if read_bundle(bundle_dir)[0].speaker_norm is not None else [])]
    if manifest is not None and all(k in manifest for k in wanted):
        names = [f for group in manifest.get("files", {}).values() for f in group.values()]
        if manifest.get("fingerprint") == bundle_fingerprint(bundle_dir) and all((out_dir / f).is_file() for f in names):
            return manifest
    return None


def other_model_export(bundle_dir: str | Path, out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir`` when it is the export of another model than the bundle in
    ``bundle_dir`` (a checkpoint's, another bundle's), which :func:`ensure_exported` does not replace;
    None otherwise (none, or this bundle's, of this or another version)."""
    from avemo.inference.bundle import read_bundle

    held = read_manifest(Path(out_dir))
    return None if held is None or held.get("bundle") == read_bundle(Path(bundle_dir))[0].name else held


def ensure_exported(bundle_dir: str | Path, out_dir: str | Path) -> dict:
    """Export unless ``out_dir`` already holds the graphs of this very bundle (:func:`current_export`);
    graphs of another version of this bundle there are overwritten, another model's are not (one-line
    error, :func:`other_model_export`). Returns the manifest."""
    from avemo.inference.engines import refuse_other_export

    manifest = current_export(bundle_dir, out_dir)
    if manifest is not None:
        return manifest
    held = other_model_export(bundle_dir, out_dir)
    if held is not None:
        refuse_other_export(Path(out_dir), held, f"avemo export --out {out_dir}")
    export_bundle(bundle_dir, out_dir)  # missing, incomplete, or of another version or export version
    return read_manifest(Path(out_dir))
