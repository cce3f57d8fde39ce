"""Degraded copies of training clips as augmentation (``TrainConfig.augment.channels``)."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from avemo import config as cfg
from avemo.cache import FeatureCache
from avemo.datasets.labels import label_set_for
from avemo.datasets.pairing import pair_takes
from avemo.datasets.records import Clip
from avemo.errors import CacheError, ConfigError
from avemo.extraction import ExtractorSpec
from avemo.media.channels import ChannelUnavailableError, Codec
from avemo.models.inputs import InputSpec
from avemo.training import channel_copies as cc
from avemo.training.config import ChannelAugmentConfig, TrainConfig
from avemo.training.data import gather

EMOTIONS = ("angry", "happy", "sad", "neutral")


def _takes(n_speakers: int, per_speaker: int, root: Path | None = None, dataset: str = "folder"):
    """Takes of generated speakers; with ``root``, each has a 0.4 s generated audio file there."""
    clips = []
    for s in range(n_speakers):
        for i in range(per_speaker):
            path = Path(root or "/nonexistent") / f"s{s:02d}_{i:03d}.wav"
            if root is not None:
                import soundfile as sf

                rng = np.random.default_rng([s, i])
                t = np.arange(6400) / 16000
                y = 0.3 * np.sin(2 * np.pi * (120 + 40 * s + 5 * i) * t) * (1 + 0.5 * rng.standard_normal(len(t)))
                sf.write(path, y.astype(np.float32), 16000)
            clips.append(Clip(path, dataset, EMOTIONS[i % len(EMOTIONS)], f"{s:02d}", f"{s:02d}_{i:03d}", ("audio",)))
    return list(pair_takes(clips).values())


def test_config_is_data_loaded_from_toml_with_the_recipe_defaults(tmp_path):
    text = "[augment.channels]\nenabled = true\nnoise_snr = [10, 15]\ncorpora = ['ravdess']\n"
    (tmp_path / "train.toml").write_text(text)
    config = cfg.from_dict(TrainConfig, cfg.load_file(tmp_path / "train.toml"))
    ch = config.augment.channels
    assert ch.enabled and ch.noise_snr == (10.0, 15.0) and ch.corpora == ("ravdess",)
    assert (ch.fraction, ch.copies, ch.gain_copy, ch.seed) == (1.0, 3, True, 1000)
    assert cfg.to_dict(config)["augment"]["channels"]["opus_kbps"] == [8.0, 12.0, 16.0, 24.0]
    assert not TrainConfig().augment.channels.enabled  # off by default
    with pytest.raises(ConfigError, match="copies"):
        ChannelAugmentConfig(kinds=("noise",), copies=3)
    with pytest.raises(ConfigError, match="unknown"):
        cfg.from_dict(TrainConfig, {"augment": {"channels": {"kinds": ["wind"]}}})


def test_plan_is_deterministic_with_the_fraction_and_copies_of_the_config():
    takes = _takes(8, 50)
    config = ChannelAugmentConfig(enabled=True, fraction=0.25)  # the other settings: the defaults
    plan, skipped = cc.plan_copies(takes, config)
    again, _ = cc.plan_copies(list(reversed(takes)), config)
    assert {(c.take.key, c.slot, c.channel, c.item, c.sources) for c in plan} == \
        {(c.take.key, c.slot, c.channel, c.item, c.sources) for c in again}
    chosen = {t.key for t in takes if zlib.crc32(f"{t.key}/1000".encode()) < 0.25 * 2**32}
    assert {c.take.key for c in plan} == chosen and 0.15 < len(chosen) / len(takes) < 0.35
    assert not skipped
    for key in chosen:  # 3 copies: two of distinct kinds, then one gain-only copy
        mine = sorted((c for c in plan if c.take.key == key), key=lambda c: c.slot)
        assert [c.slot for c in mine] == [0, 1, 2]
        assert mine[0].channel.kind != mine[1].channel.kind and mine[2].channel.kind == "gain"
        assert [c.item for c in mine] == [zlib.crc32(f"{key}/{s}".encode()) for s in range(3)]
    kinds = {c.channel.kind for c in plan}
    assert kinds == {"codec", "telephone", "noise", "babble", "reverb", "gain"}
    for c in plan:  # parameters within the recipe's ranges
        k, conf = c.channel.kind, c.channel.config
        assert k != "noise" or 5 <= conf.snr <= 20
        assert k != "gain" or -25 <= conf.db <= 10
        assert k != "reverb" or (conf.rt60 in (0.3, 0.5, 0.7, 0.9) and conf.rooms == 8)
        assert k != "codec" or conf.kbps in {"mp3": (16, 24, 32), "aac": (16, 24, 32), "opus": (8, 12, 16, 24)}[conf.codec]
    other, _ = cc.plan_copies(takes, ChannelAugmentConfig(enabled=True, seed=7))
    assert {c.take.key for c in other} != chosen
    half, _ = cc.plan_copies(takes, ChannelAugmentConfig(enabled=True, fraction=0.5, copies=2, gain_copy=False))
    assert len(half) == 2 * len({c.take.key for c in half}) and len({c.take.key for c in half}) > len(chosen)
    assert all(c.channel.kind != "gain" or "gain" in ChannelAugmentConfig().kinds for c in half)


def test_corpora_restricts_the_copies_to_the_named_datasets():
    takes = _takes(4, 20, dataset="ravdess") + _takes(4, 20, dataset="emodb")
    plan, _ = cc.plan_copies(takes, ChannelAugmentConfig(enabled=True, fraction=1.0, corpora=("emodb",)))
    assert plan and {c.take.dataset for c in plan} == {"emodb"}


def test_babble_talkers_are_other_training_speakers_only():
    train = _takes(5, 12)
    config = ChannelAugmentConfig(enabled=True, fraction=1.0, kinds=("babble",), copies=1, gain_copy=False)
    plan, skipped = cc.plan_copies(train, config)
    files = {str(t["audio"].path): t.speaker for t in train}
    assert len(plan) == len(train) and not skipped
    for c in plan:
        assert len(c.sources) == 4 and len(set(c.sources)) == 4
        speakers = [files[s] for s in c.sources]  # KeyError: a file outside the training takes
        assert c.take.speaker not in speakers and len(set(speakers)) == 4
    alone, skipped = cc.plan_copies(_takes(1, 10), config)  # nobody else to talk
    assert alone == [] and skipped == ["babble needs 4 clips of other training speakers; its copies are skipped"]


def test_unavailable_codec_is_reported_once_and_its_copies_skipped(monkeypatch, caplog):
    real = Codec.check

    def check(self):
        if self.config.codec == "opus":
            raise ChannelUnavailableError(f"channel {self.name}: this PyAV/FFmpeg build has no libopus encoder")
        real(self)

    monkeypatch.setattr(Codec, "check", check)
    config = ChannelAugmentConfig(enabled=True, fraction=1.0, kinds=("codec",), copies=1, gain_copy=False)
    with caplog.at_level(logging.WARNING, logger="avemo.training.channel_copies"):
        plan, skipped = cc.plan_copies(_takes(3, 40), config)
    codecs = {c.channel.config.codec for c in plan}
    assert codecs == {"mp3", "aac"}  # opus copies skipped, not replaced by another codec
    assert len(plan) < 120 and len(skipped) > 1  # one reason per bit rate drawn
    assert all("libopus" in s and "skipped" in s for s in skipped)
    assert len(caplog.records) == len(skipped) == len(set(skipped))


def test_copies_are_extracted_through_the_cache_with_distinct_keys(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    train = _takes(3, 8, root)
    specs = {"audio": InputSpec("audio", "mfcc", {}, (None, 120), "sequence")}
    cache = FeatureCache(tmp_path / "cache")
    config = ChannelAugmentConfig(enabled=True, fraction=0.5, kinds=("noise", "gain", "telephone", "babble"))
    plan, _ = cc.plan_copies(train, config)
    keys = {cache.key("f", ExtractorSpec.of("mfcc", perturb=c.perturb(config.seed)).build().cache_spec())
            for c in plan}
    assert len(keys) == len(plan) and cache.key("f", ExtractorSpec.of("mfcc").build().cache_spec()) not in keys
    clean = gather(train, specs, cache=cache)
    copies, report = cc.channel_copies(clean, specs, config, cache=cache)
    assert report.copies == len(copies) == len(plan) and not report.failed
    assert [t.key for t in copies.takes] == [c.take.key for c in plan]  # a copy keeps its take
    index = {t.key: i for i, t in enumerate(clean.takes)}
    for take, x in zip(copies.takes, copies.inputs["audio"], strict=True):
        assert x.shape == clean.inputs["audio"][index[take.key]].shape
        assert not np.allclose(x, clean.inputs["audio"][index[take.key]])
    entries = sorted(p.name for p in (tmp_path / "cache").rglob("*.npz"))
    again, _ = cc.channel_copies(clean, specs, config, cache=cache)  # a rerun reads the cache
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.npz")) == entries
    assert len(entries) == len(train) + len(plan)
    for a, b in zip(copies.inputs["audio"], again.inputs["audio"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_full_disk_stops_the_gathering_of_features_and_copies(tmp_path, monkeypatch):
    """A cache that cannot be written fails the whole gathering with its one line, not take after take."""
    import errno

    from avemo.cache import store

    root = tmp_path / "clips"
    root.mkdir()
    train = _takes(2, 4, root)
    specs = {"audio": InputSpec("audio", "mfcc", {}, (None, 120), "sequence")}
    clean = gather(train, specs, cache=FeatureCache(tmp_path / "cache"))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    config = ChannelAugmentConfig(enabled=True, fraction=1.0, copies=1, kinds=("noise",), gain_copy=False)
    with pytest.raises(CacheError, match=r"cannot write cache entry \(No space left on device\)"):
        cc.channel_copies(clean, specs, config, cache=FeatureCache(tmp_path / "cache"))
    with pytest.raises(CacheError, match=r"cannot write cache entry \(No space left on device\)"):
        gather(train, specs, cache=FeatureCache(tmp_path / "other"))


def test_training_copies_only_training_speakers(tmp_path, monkeypatch):
    from avemo.training import DataBundle, train_run

    root = tmp_path / "clips"
    root.mkdir()
    takes = _takes(4, 8, root)
    data = DataBundle("folder", root, takes, label_set_for("folder", EMOTIONS))
    seen = []

    def spy(train, specs, config, *, cache):
        seen.append(train)
        return real(train, specs, config, cache=cache)

    real = cc.channel_copies
    monkeypatch.setattr(cc, "channel_copies", spy)
    by = {s: [t for t in takes if t.speaker == s] for s in ("00", "01", "02", "03")}
    channels = {"enabled": True, "fraction": 1.0, "copies": 1, "kinds": ["noise"], "gain_copy": False}
    config = cfg.from_dict(TrainConfig, {"epochs": 1, "augment": {"channels": channels}})
    common = {"train_takes": by["00"] + by["01"], "val_takes": by["02"], "test_takes": by["03"],
              "model_config": {"hidden": [], "input_dim": 88}, "cache": FeatureCache(tmp_path / "cache"),
              "plots": False}
    run = train_run("egemaps_mlp", data, train_config=config, **common)
    assert run.test is not None and len(seen) == 1
    assert {t.speaker for t in seen[0].takes} == {"00", "01"}
    train_run("egemaps_mlp", data, train_config=TrainConfig(epochs=1), **common)
    assert len(seen) == 1  # off by default: no copies


def test_a_perturbed_entry_is_read_with_the_wrapped_extractors_view():
    from avemo.features.audio.perturb import Perturbed
    from avemo.features.base import get_extractor

    means = np.arange(14, dtype=np.float32).reshape(7, 2)
    mean = Perturbed(get_extractor("whisper_base"), channel="gain_-6db", item=3)
    concat = Perturbed(get_extractor("whisper_base", combine="concat"), channel="gain_-6db", item=3)
    assert mean.cache_spec() == concat.cache_spec()  # one stored entry serves both
    np.testing.assert_array_equal(mean.view({"layer_means": means})["x"], means.mean(axis=0))
    np.testing.assert_array_equal(concat.view({"layer_means": means})["x"], means.reshape(-1))
