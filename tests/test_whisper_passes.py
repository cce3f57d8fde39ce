"""The whisper_base extractor reads a long clip in the predictor's encoder passes; its cache entries of
long clips made by the 30 s-chunk code are not reused, those of clips of one pass are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avemo.cache.store import FeatureCache
from avemo.digest import file_digest
from avemo.extraction.core import all_cached, extract_file
from avemo.features.audio.perturb import Perturbed
from avemo.features.audio.whisper_encoder import load_encoder
from avemo.features.audio.whisper_passes import PASS_SECONDS
from avemo.features.base import get_extractor
from avemo.inference.windows import WindowGrid
from avemo.media import load_audio
from avemo.media.synth import write_audio

SR = 16000


def one_pass_means(y: np.ndarray) -> np.ndarray:
    """(7, 512) layer means of ``y`` encoded in one pass over the position table, as the extractor
    pooled every clip of up to 30 s before the passes."""
    encoder = load_encoder()
    with torch.inference_mode():
        states = encoder(encoder.log_mel(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None]))
    frames = max(1, min(states[0].shape[1], -(-len(y) // 320)))
    stacked = torch.stack([s[0, :frames] for s in states]).numpy()
    return (stacked.sum(axis=1, dtype=np.float64) / frames).astype(np.float32)


@pytest.fixture(scope="module")
def concat_expert(tmp_path_factory):
    """A predictor's audio expert on a whisper_base(combine=concat) head: its clip embedding is the mean
    of its frame states, the 7 layers side by side."""
    from avemo.datasets.labels import LabelSet
    from avemo.inference.audio import make_audio_expert
    from avemo.models import create_model
    from avemo.models.checkpoint import load_checkpoint, save_checkpoint
    from avemo.models.normalization import ArraySet, Normalizer

    torch.manual_seed(0)
    model = create_model("whisper_logreg", num_classes=3, combine="concat")
    norm = Normalizer.fit(ArraySet({"audio": list(np.random.default_rng(0).normal(size=(6, 7 * 512)))}),
                          dict(model.inputs))
    folder = tmp_path_factory.mktemp("ckpt") / "concat"
    ckpt = load_checkpoint(save_checkpoint(folder, model, labels=LabelSet("toy", ("a", "b", "c")), normalizer=norm))
    return make_audio_expert(ckpt, device="cpu")


@pytest.mark.shared_data
def test_long_clip_layer_means_are_the_mean_of_the_predictors_frame_states(ravdess_speech_root, tmp_path,
                                                                          concat_expert):
    """Three RAVDESS utterances of one actor and emotion joined by 1.5 s of silence (15.8 s): the
    extractor's layer means are the mean of the frame states the predictor pools, not one pass."""
    files = sorted((ravdess_speech_root / "Actor_01").glob("03-01-05-*"))[:3]
    silence = np.zeros(int(1.5 * SR), dtype=np.float32)
    y = np.concatenate([part for f in files for part in (load_audio(f, SR), silence)])
    assert 12 < len(y) / SR < 20
    path = write_audio(tmp_path / "long.wav", y, SR)
    means = get_extractor("whisper_base").extract(path)["layer_means"]
    clip, _, duration, _ = concat_expert.embed(path, WindowGrid())
    assert duration > PASS_SECONDS
    np.testing.assert_allclose(means.reshape(-1), clip, rtol=1e-5, atol=1e-5)


def test_a_clip_of_one_pass_keeps_its_features_and_one_sample_more_is_two_passes():
    """Up to :data:`PASS_SECONDS` the features are the one-pass encoding, to the bit; one frame more and
    the clip is read in two passes (its layer means are no longer those of one pass)."""
    rng = np.random.default_rng(3)
    y = (0.1 * rng.standard_normal(int(PASS_SECONDS * SR) + 320)).astype(np.float32)
    extractor = get_extractor("whisper_base")
    for n in (SR // 2, 3 * SR, int(PASS_SECONDS * SR)):
        np.testing.assert_array_equal(extractor.from_signal(y[:n], SR)["layer_means"], one_pass_means(y[:n]))
    longer = extractor.from_signal(y, SR)["layer_means"]
    assert np.abs(longer - one_pass_means(y)).max() > 1e-3


def test_hidden_states_of_a_long_signal_are_the_frames_of_the_passes():
    """Frames 0-4 s come from the first pass (0-5 s), frames 4-8 s from the second (3-9 s), and so on:
    every frame once, none more than 5 s into its pass."""
    encoder = load_encoder()
    y = (0.1 * np.random.default_rng(0).standard_normal(int(11.5 * SR))).astype(np.float32)
    states = encoder.hidden_states(y)
    assert states.shape == (7, -(-len(y) // 320), 512)
    with torch.inference_mode():
        first = encoder(encoder.log_mel(torch.from_numpy(y[: 5 * SR])[None]))
        second = encoder(encoder.log_mel(torch.from_numpy(y[3 * SR : 9 * SR])[None]))
    np.testing.assert_allclose(states[:, :200], torch.stack([s[0, :200] for s in first]).numpy(), atol=1e-4)
    np.testing.assert_allclose(states[:, 200:400], torch.stack([s[0, 50:250] for s in second]).numpy(), atol=1e-4)


def old_entry(cache: FeatureCache, path, extractor) -> str:
    """Store under ``extractor``'s key for ``path`` an entry as the 30 s-chunk code wrote it (no pass plan),
    with values no encoder gives (so that a reused entry shows), and a decoder warning; returns the key."""
    means = np.full((7, 512), 7.0, dtype=np.float32)
    key = cache.key(file_digest(path), extractor.cache_spec())
    cache.put(key, {"layer_means": means, "x": means.mean(axis=0)}, extractor.cache_spec(), warnings=["damaged"])
    return key


def test_entries_of_long_clips_from_the_old_code_are_computed_again(make_clip, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    plain = get_extractor("whisper_base")
    short = make_clip("short.wav", duration=4.0, audio="voice")
    long = make_clip("long.wav", duration=8.0, audio="voice")
    short_key = old_entry(cache, short, plain)
    old_entry(cache, long, plain)
    assert all_cached(str(long), [plain], cache) is None
    outcome, feats = extract_file(short, [plain], cache, keep=True)
    assert outcome.cached == ["whisper_base"] and (feats["whisper_base"]["layer_means"] == 7.0).all()
    renewed, warnings = cache.read(short_key)  # stored again with the pass plan: the next read decodes nothing
    assert plain.outdated(renewed) is None and (renewed["layer_means"] == 7.0).all() and warnings == ["damaged"]
    outcome, feats = extract_file(long, [plain], cache, keep=True)
    assert outcome.computed == ["whisper_base"]
    np.testing.assert_array_equal(feats["whisper_base"]["layer_means"],
                                  plain.from_signal(load_audio(long, SR), SR)["layer_means"])
    outcome, again = extract_file(long, [plain], cache, keep=True)  # the new entry replaced the old one
    assert outcome.cached == ["whisper_base"]
    np.testing.assert_array_equal(again["whisper_base"]["layer_means"], feats["whisper_base"]["layer_means"])
    slowed = Perturbed(plain, speed=0.5)  # the 4 s clip played at half speed is 8 s long: two passes
    old_entry(cache, short, slowed)
    outcome, _ = extract_file(short, [slowed], cache)
    assert outcome.computed == ["whisper_base"] and all_cached(str(short), [slowed], cache) is not None
