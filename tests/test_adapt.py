"""Test-time mean adaptation (``Normalizer.transform(..., adapt="mean")``, ``avemo evaluate --adapt mean``):
the evaluated set's own mean replaces the training mean, the training std is kept, frames and inputs read
as extracted are untouched, tiny sets and models without standardised inputs are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avemo.errors import ConfigError, DatasetError
from avemo.models.inputs import InputSpec
from avemo.models.normalization import MIN_ADAPT_ITEMS, ArraySet, Normalizer

VECTOR = InputSpec("audio", "egemaps", {}, (None,), "vector")
SEQUENCE = InputSpec("audio", "mfcc", {}, (None, 5), "sequence")
FRAMES = InputSpec("video", "face_crops", {}, (None, 4, 4, 3), "frames")
RAW = InputSpec("text", "minilm_hidden", {}, (None,), "vector", standardise=False)


def _vectors(n: int, dim: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return list((rng.normal(size=(n, dim)) * rng.uniform(0.5, 3.0, dim) + rng.normal(size=dim)).astype(np.float32))


def _sequences(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(int(rng.integers(3, 9)), 5)) * 2 + 1).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize(("spec", "make"), [(VECTOR, _vectors), (SEQUENCE, _sequences)])
def test_adapted_transform_of_a_shifted_copy_equals_the_plain_transform(spec, make):
    train = make(40)
    norm = Normalizer.fit(ArraySet({"x": train}), {"x": spec})
    shift = np.linspace(-5.0, 7.0, 5 if spec.kind == "sequence" else 6).astype(np.float32)
    plain = norm.transform(ArraySet({"x": train}))["x"]
    adapted = norm.transform(ArraySet({"x": [a + shift for a in train]}), adapt="mean")["x"]
    for p, a in zip(plain, adapted, strict=True):
        np.testing.assert_allclose(a, p, atol=1e-4)
    unadapted = norm.transform(ArraySet({"x": [a + shift for a in train]}))["x"]
    assert not np.allclose(unadapted[0], plain[0], atol=1e-2)  # without adaptation the shift stays


def test_adaptation_keeps_the_training_std_and_leaves_the_statistics_alone():
    train = _vectors(30)
    norm = Normalizer.fit(ArraySet({"x": train}), {"x": VECTOR})
    mean, std = norm.mean["x"].copy(), norm.std["x"].copy()
    test = _vectors(20, seed=1)
    once = np.stack(norm.transform(ArraySet({"x": test}), adapt="mean")["x"])
    twice = np.stack(norm.transform(ArraySet({"x": [2 * a for a in test]}), adapt="mean")["x"])
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-5, atol=1e-5)  # the scale is not re-estimated
    np.testing.assert_allclose(once.mean(axis=0), 0.0, atol=1e-5)  # centred on the set's own mean
    expected = (np.stack(test) - np.stack(test).astype(np.float64).mean(axis=0)) / std
    np.testing.assert_allclose(once, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(norm.mean["x"], mean)  # the checkpoint's statistics are not changed
    np.testing.assert_array_equal(norm.std["x"], std)


def test_frames_and_inputs_read_as_extracted_are_untouched():
    rng = np.random.default_rng(0)
    data = ArraySet({"x": _vectors(12), "f": [rng.uniform(size=(2, 4, 4, 3)).astype(np.float32) for _ in range(12)],
                     "t": _vectors(12, seed=3)})
    norm = Normalizer.fit(data, {"x": VECTOR, "f": FRAMES, "t": RAW})
    assert norm.standardised == ["x"]
    plain, adapted = norm.transform(data), norm.transform(data, adapt="mean")
    for name in ("f", "t"):
        for p, a, raw in zip(plain[name], adapted[name], data.inputs[name], strict=True):
            np.testing.assert_array_equal(a, p)
            np.testing.assert_array_equal(a, raw)
    shifted = ArraySet({**data.inputs, "x": [a + 3.0 for a in data.inputs["x"]]})
    assert not np.allclose(np.stack(norm.transform(shifted, adapt="mean")["x"]), np.stack(norm.transform(shifted)["x"]))


def test_a_tiny_set_is_refused_in_one_line():
    norm = Normalizer.fit(ArraySet({"x": _vectors(30)}), {"x": VECTOR})
    with pytest.raises(DatasetError, match=f"at least {MIN_ADAPT_ITEMS} items") as err:
        norm.transform(ArraySet({"x": _vectors(MIN_ADAPT_ITEMS - 1)}), adapt="mean")
    assert "\n" not in str(err.value)
    assert len(norm.transform(ArraySet({"x": _vectors(MIN_ADAPT_ITEMS)}), adapt="mean")["x"]) == MIN_ADAPT_ITEMS


def test_unknown_adaptation_and_models_without_a_training_mean_are_refused():
    norm = Normalizer.fit(ArraySet({"x": _vectors(30)}), {"x": VECTOR})
    with pytest.raises(ConfigError, match="adapt must be one of"):
        norm.transform(ArraySet({"x": _vectors(30)}), adapt="median")
    rng = np.random.default_rng(0)
    frames = ArraySet({"f": [rng.uniform(size=(2, 4, 4, 3)).astype(np.float32) for _ in range(12)]})
    with pytest.raises(ConfigError, match="standardises none of its inputs"):
        Normalizer.fit(frames, {"f": FRAMES}).transform(frames, adapt="mean")
    raw = ArraySet({"t": _vectors(12)})
    with pytest.raises(ConfigError, match="standardises none of its inputs"):
        Normalizer.fit(raw, {"t": RAW}).transform(raw, adapt="mean")
    per_speaker = ArraySet({"x": _vectors(12)}, speakers=["a", "b"] * 6)
    with pytest.raises(ConfigError, match="speaker normalisation"):
        Normalizer.fit(per_speaker, {"x": VECTOR}, speaker_norm=True).transform(per_speaker, adapt="mean")


# ----------------------------------------------------------------------------- avemo evaluate --adapt

@pytest.fixture(scope="module")
def egemaps_run(make_ravdess, tmp_path_factory):
    """A 1-epoch egemaps_mlp on a generated corpus (behaviour only), and the feature cache."""
    from avemo.cache import FeatureCache
    from avemo.training import TrainConfig, load_data, train_run

    out, cache = tmp_path_factory.mktemp("adapt_run") / "run", tmp_path_factory.mktemp("adapt_cache")
    data = load_data("ravdess", make_ravdess(("01", "05", "07")))
    train_run("egemaps_mlp", data, train_takes=[t for t in data.takes if t.speaker != "07"],
              val_takes=[t for t in data.takes if t.speaker == "07"], train_config=TrainConfig(epochs=1),
              cache=FeatureCache(cache), out_dir=out, plots=False)
    return out, cache


def test_cli_evaluate_adapt_mean_records_it_in_the_json(egemaps_run, make_ravdess, tmp_path, avemo_main):
    run, cache = egemaps_run
    corpus = make_ravdess(("01", "05", "07"))  # 24 clips
    reports = {}
    for adapt in ("mean", None):
        reports[adapt] = tmp_path / f"{adapt}.json"
        extra = ["--adapt", adapt] if adapt else []
        code, _, err = avemo_main("evaluate", "-c", run, "-r", corpus, "--json", reports[adapt],
                                  "--cache", cache, "-j", 1, *extra)
        assert code == 0, err
    adapted, plain = (json.loads(reports[a].read_text()) for a in ("mean", None))
    assert adapted["adapt"] == "mean" and plain["adapt"] is None
    assert adapted["n"] == plain["n"] == 24 and adapted["labels"] == plain["labels"]


def test_cli_evaluate_refuses_a_bad_adaptation_and_a_tiny_set(egemaps_run, make_ravdess, tmp_path, avemo_main):
    run, cache = egemaps_run
    corpus = make_ravdess(("01", "05", "07"))
    code, _, err = avemo_main("evaluate", "-c", run, "-r", corpus, "--cache", cache, "-j", 1,
                              "--adapt", "median", "--json", tmp_path / "bad.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "adapt must be one of ['mean']" in err
    assert str(run) in err and not (tmp_path / "bad.json").exists()
    code, _, err = avemo_main("evaluate", "-c", run, "-r", corpus, "--cache", cache, "-j", 1,
                              "--adapt", "mean", "--speakers", "07")  # 8 clips
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"at least {MIN_ADAPT_ITEMS} items" in err and "got 8" in err
