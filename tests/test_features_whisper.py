"""The Whisper-base encoder port: agreement with CTranslate2, pooling, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avemo.errors import CheckpointError, ConfigError, FeatureError
from avemo.features import get_extractor
from avemo.features.audio.ctranslate2_format import read_ct2
from avemo.features.audio.whisper_encoder import WhisperEncoder, load_encoder

REFERENCE = Path(__file__).parent / "data" / "whisper_reference.npz"


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return load_encoder()


def test_matches_ctranslate2(encoder):
    """tests/data/whisper_reference.npz was computed by CTranslate2 4.8.5 (benchmarks/make_whisper_reference.py)."""
    ref = np.load(REFERENCE)
    padded = np.zeros(16000 * 30, dtype=np.float32)
    padded[: len(ref["audio"])] = ref["audio"]
    with torch.inference_mode():
        states = encoder(encoder.log_mel(torch.from_numpy(padded)[None]))
    ours = states[-1][0, : len(ref["encoded"])].numpy()
    scale = np.abs(ref["encoded"]).max()
    assert np.abs(ours - ref["encoded"]).max() < 2e-3 * scale


def test_structure(encoder):
    assert encoder.n_hidden == 7 and len(encoder.blocks) == 6
    assert sum(p.numel() for p in encoder.parameters()) == 19_825_664  # Whisper base encoder, without positions


def test_hidden_state_frames_follow_the_clip_length(encoder):
    y = np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32)
    states = encoder.hidden_states(y)
    assert states.shape == (7, 50, 512)  # one frame per 20 ms, no padding to 30 s
    np.testing.assert_array_equal(states, encoder.hidden_states(y))  # deterministic
    assert encoder.hidden_states(np.tile(y, 31)).shape == (7, 1550, 512)  # 31 s in passes: every frame once


def test_extractor_outputs(make_clip):
    ex = get_extractor("whisper_base")
    feats = ex.extract(make_clip("w.wav", duration=1.0, sample_rate=8000, channels=2))
    assert feats["x"].shape == (512,) and feats["layer_means"].shape == (7, 512)
    np.testing.assert_allclose(feats["x"], feats["layer_means"].mean(axis=0), rtol=1e-5, atol=1e-6)
    layer3 = get_extractor("whisper_base", layer=3).from_signal(np.zeros(8000, np.float32) + 0.01, 16000)
    np.testing.assert_array_equal(layer3["x"], layer3["layer_means"][3])
    assert np.isfinite(layer3["x"]).all()


def test_errors(tmp_path):
    with pytest.raises(FeatureError, match="too short"):
        get_extractor("whisper_base").from_signal(np.zeros(100, np.float32), 16000)
    with pytest.raises(ConfigError, match="hidden states 0..6"):  # a config error, as every config's
        get_extractor("whisper_base", layer=9)
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x05\x00\x00\x00")
    with pytest.raises(CheckpointError, match="version 5"):
        read_ct2([bad])
    truncated = tmp_path / "t.bin"
    truncated.write_bytes(b"\x06\x00\x00\x00\x0b\x00WhisperSpec")
    with pytest.raises(CheckpointError, match="truncated"):
        read_ct2([truncated])
    with pytest.raises(CheckpointError, match="not found"):
        WhisperEncoder.from_ct2([tmp_path / "missing.bin"])


def test_perturbed_whisper_reads_a_shared_cache_entry_as_its_inner_config():
    """A degraded copy's cache entry is shared by combine="mean" and "concat": the wrapper must apply the inner view."""
    from avemo.features.audio.perturb import Perturbed

    means = np.arange(7 * 512, dtype=np.float32).reshape(7, 512)
    stored = {"layer_means": means, "x": means.mean(axis=0)}  # as a combine="mean" run stored it
    concat = Perturbed(get_extractor("whisper_base", combine="concat"), speed=1.1)
    assert concat.cache_spec() == Perturbed(get_extractor("whisper_base"), speed=1.1).cache_spec()
    np.testing.assert_array_equal(concat.view(stored)["x"], means.reshape(-1))


def test_layer_norm_standardises_each_layer_mean_and_shares_the_cache_entry():
    """``layer_norm`` is a view of the stored layer means: every row standardised over its dimensions
    before ``combine``; the cache key and the stored entry are those of the default config."""
    from avemo.models.encoders.logistic import WhisperLogreg

    rng = np.random.default_rng(0)
    means = (rng.normal(size=(7, 512)) * np.arange(1, 8)[:, None] + np.arange(7)[:, None]).astype(np.float32)
    means[2] = 3.0  # a constant layer becomes zeros, not NaN
    stored = {"layer_means": means}
    plain, normed = get_extractor("whisper_base", combine="concat"), get_extractor(
        "whisper_base", combine="concat", layer_norm=True)
    assert normed.cache_spec() == get_extractor("whisper_base").cache_spec()
    rows = normed.view(stored)["x"].reshape(7, 512)
    varying = [i for i in range(7) if i != 2]
    np.testing.assert_allclose(rows[varying].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(rows[varying].std(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(rows[2], 0.0)
    np.testing.assert_array_equal(plain.view(stored)["x"], means.reshape(-1))  # off: the means as stored
    np.testing.assert_array_equal(normed.stored(normed.view(stored))["layer_means"], means)  # stored unchanged
    mean_view = get_extractor("whisper_base", layer_norm=True).view(stored)["x"]
    np.testing.assert_allclose(mean_view, rows.mean(axis=0), rtol=1e-5, atol=1e-6)
    # the model names the option in its input only when it is set (older checkpoints name the same input)
    assert WhisperLogreg.spec_for(WhisperLogreg.Config()).config == {"combine": "concat"}
    assert WhisperLogreg.spec_for(WhisperLogreg.Config(layer_norm=True)).config == {"combine": "concat",
                                                                                      "layer_norm": True}
