"""Property tests of fixed-length crop / pad (avemo.features.length)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avemo import config as cfg
from avemo.errors import ConfigError, FeatureError
from avemo.features.length import CROP_MODES, PAD_MODES, LengthPolicy, fit_length

sequences = st.integers(0, 40).flatmap(
    lambda t: arrays(np.float32, (t, 3), elements=st.floats(-1e3, 1e3, width=32, allow_nan=False))
)
targets = st.integers(1, 50)
crops = st.sampled_from(CROP_MODES)
pads = st.sampled_from(PAD_MODES)


def _is_contiguous_run(out: np.ndarray, x: np.ndarray) -> int | None:
    """The offset at which ``out`` appears in ``x`` as a contiguous run, or None."""
    n = len(out)
    for offset in range(len(x) - n + 1):
        if np.array_equal(x[offset : offset + n], out):
            return offset
    return None


@settings(max_examples=100, deadline=None)
@given(x=sequences, n=targets, crop=crops, pad=pads, seed=st.integers(0, 2**32 - 1))
def test_shape_dtype_and_mask(x, n, crop, pad, seed):
    if len(x) == 0 and pad != "zeros":
        with pytest.raises(FeatureError, match="empty"):
            fit_length(x, n, crop=crop, pad=pad, rng=seed)
        return
    out, mask = fit_length(x, n, crop=crop, pad=pad, rng=seed, return_mask=True)
    assert out.shape == (n, 3) and out.dtype == x.dtype
    assert mask.shape == (n,) and mask.sum() == min(len(x), n)
    assert np.all(mask[: mask.sum()])  # real frames first
    assert not np.shares_memory(out, x)


@settings(max_examples=100, deadline=None)
@given(x=sequences, n=targets, seed=st.integers(0, 2**32 - 1))
def test_crop_policies(x, n, seed):
    if len(x) < n:
        return
    start = fit_length(x, n, crop="start")
    np.testing.assert_array_equal(start, x[:n])
    centre = fit_length(x, n, crop="center")
    offset = (len(x) - n) // 2
    np.testing.assert_array_equal(centre, x[offset : offset + n])
    rand = fit_length(x, n, crop="random", rng=seed)
    assert _is_contiguous_run(rand, x) is not None
    np.testing.assert_array_equal(rand, fit_length(x, n, crop="random", rng=seed))  # seeded: reproducible


def test_random_crop_uses_every_offset_and_the_generator():
    x = np.arange(10)[:, None]
    rng = np.random.default_rng(0)
    offsets = {int(fit_length(x, 4, crop="random", rng=rng)[0, 0]) for _ in range(200)}
    assert offsets == set(range(7))  # 0..T-n, uniformly reachable; the generator advances


@settings(max_examples=100, deadline=None)
@given(x=sequences, n=targets)
def test_pad_policies(x, n):
    length = len(x)
    if length >= n or length == 0:
        return
    zeros = fit_length(x, n, pad="zeros")
    np.testing.assert_array_equal(zeros[:length], x)
    assert np.all(zeros[length:] == 0)
    edge = fit_length(x, n, pad="edge")
    np.testing.assert_array_equal(edge[:length], x)
    np.testing.assert_array_equal(edge[length:], np.broadcast_to(x[-1], (n - length, 3)))
    loop = fit_length(x, n, pad="repeat")
    np.testing.assert_array_equal(loop, x[np.arange(n) % length])


@settings(max_examples=100, deadline=None)
@given(x=sequences, crop=crops, pad=pads)
def test_exact_length_is_unchanged(x, crop, pad):
    if len(x) == 0:
        return
    np.testing.assert_array_equal(fit_length(x, len(x), crop=crop, pad=pad, rng=0), x)


@settings(max_examples=100, deadline=None)
@given(x=sequences, n=targets, crop=crops, pad=pads)
def test_fitting_is_idempotent(x, n, crop, pad):
    if len(x) == 0 and pad != "zeros":
        return
    once = fit_length(x, n, crop=crop, pad=pad, rng=1)
    np.testing.assert_array_equal(fit_length(once, n, crop=crop, pad=pad, rng=2), once)


def test_other_ranks():
    video = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    out = fit_length(video, 8, pad="edge")
    assert out.shape == (8, 4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[5:], np.broadcast_to(video[-1], (3, 4, 4, 3)))
    np.testing.assert_array_equal(fit_length(np.arange(7.0), 3), [2.0, 3.0, 4.0])


def test_length_policy_is_config_data():
    policy = LengthPolicy(frames=100, crop="random", pad="repeat")
    assert cfg.from_dict(LengthPolicy, cfg.to_dict(policy)) == policy
    assert cfg.to_dict(LengthPolicy()) == {"frames": 100, "crop": "center", "pad": "zeros"}
    x = np.random.default_rng(0).standard_normal((130, 34)).astype(np.float32)
    np.testing.assert_array_equal(
        policy.apply(x, rng=5), fit_length(x, 100, crop="random", pad="repeat", rng=5)
    )
    np.testing.assert_array_equal(fit_length(x, policy=LengthPolicy(frames=20)), x[55:75])
    np.testing.assert_array_equal(fit_length(x, 10, policy=LengthPolicy(frames=20, crop="start")), x[:10])
    with pytest.raises(ConfigError, match="crop"):
        cfg.from_dict(LengthPolicy, {"crop": "middle"})
    with pytest.raises(ConfigError, match="frames"):
        LengthPolicy(frames=0)


def test_bad_arguments():
    x = np.zeros((5, 2))
    with pytest.raises(ConfigError, match="rng"):
        fit_length(np.zeros((9, 2)), 4, crop="random")
    with pytest.raises(ConfigError, match="positive integer"):
        fit_length(x, 0)
    with pytest.raises(ConfigError, match="pad"):
        fit_length(x, 9, pad="mirror")
    with pytest.raises(FeatureError, match="scalar"):
        fit_length(np.float32(1.0), 3)
