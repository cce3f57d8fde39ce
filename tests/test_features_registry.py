"""The base contract of a feature extractor, checked over the whole registry (as scikit-learn's
``check_estimator`` runs over every estimator): a new extractor is tested here without being listed.

Every registered extractor has a summary, a modality, a dataclass ``Config`` whose defaults round-trip
through a dict, a JSON cache spec, and ``feature_names()``: unique names, one per column of its ``"x"``
(checked on its real output for a synthetic clip with a voice and a face, or a transcript file).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from avemo import config as cfg
from avemo.features import extractor_class, get_extractor, list_extractors
from avemo.modality import MODALITIES

#: every extractor avemo registers (test modules register their own helpers, which are not checked here)
BUILT_IN = [n for n in list_extractors() if extractor_class(n).__module__.startswith("avemo.")]
#: options that keep the slow extractors quick here (the names are still checked against their config)
QUICK = {"face_crops": {"n_frames": 4, "size": [48, 48]}, "face_landmarks": {"fps": 4.0}, "stip": {"height": 60}}


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("registry.mp4", duration=2.0, fps=25.0, size=(480, 360))


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_extractor_meets_the_base_contract(name):
    cls = extractor_class(name)
    assert cls.name == name and cls.summary and cls.modality in MODALITIES
    assert name in list_extractors(cls.modality)
    assert dataclasses.is_dataclass(cls.Config)
    extractor = get_extractor(name)
    data = cfg.to_dict(extractor.config)
    assert get_extractor(name, data).config == extractor.config
    json.dumps(extractor.cache_spec())
    names = extractor.feature_names()
    assert names and all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names)


@pytest.fixture(scope="module")
def transcript(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "registry.txt"
    path.write_text("Kids are talking by the door.\n")
    return path


@pytest.mark.parametrize("name", BUILT_IN)
def test_feature_names_name_every_column_of_x(name, clip, transcript):
    extractor = get_extractor(name, **QUICK.get(name, {}))
    x = extractor.extract(transcript if extractor.modality == "text" else clip)["x"]
    assert x.shape[-1] == len(extractor.feature_names()), (x.shape, len(extractor.feature_names()))


def test_feature_names_follow_the_config():
    assert get_extractor("mfcc", n_mfcc=13, deltas=False).feature_names() == [f"mfcc_{i}" for i in range(13)]
    names = get_extractor("mfcc", n_mfcc=2).feature_names()
    assert names == ["mfcc_0", "mfcc_1", "delta_mfcc_0", "delta_mfcc_1", "delta2_mfcc_0", "delta2_mfcc_1"]
    assert get_extractor("logmel", n_mels=3).feature_names() == ["mel_0", "mel_1", "mel_2"]
    assert get_extractor("face_crops", gray=True).feature_names() == ["gray"]
    assert len(get_extractor("stip", orientation_bins=4).feature_names()) < len(get_extractor("stip").feature_names())
    assert np.array_equal(get_extractor("whisper_base").feature_names()[:2], ["whisper_0", "whisper_1"])
