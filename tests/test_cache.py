"""The content-addressed feature cache: keys, atomic writes, corruption handling."""

from __future__ import annotations

import numpy as np
import pytest

from avemo.cache import FeatureCache, file_digest
from avemo.errors import MediaError


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "cache")


def test_round_trip(cache):
    key = cache.key("abc", {"name": "mfcc", "version": "1", "config": {"n_mfcc": 40}})
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "mask": np.array([True, False, True])}
    assert cache.get(key) is None
    path = cache.put(key, arrays)
    assert path.is_file() and key in cache
    got = cache.get(key)
    assert set(got) == {"x", "mask"}
    np.testing.assert_array_equal(got["x"], arrays["x"])
    np.testing.assert_array_equal(got["mask"], arrays["mask"])
    # nothing but the entry is left in its folder (no temporary files)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_key_depends_on_file_name_and_config(cache):
    spec = {"name": "mfcc", "version": "1", "config": {"n_mfcc": 40}}
    base = cache.key("abc", spec)
    assert cache.key("abc", dict(spec)) == base
    assert cache.key("abd", spec) != base
    assert cache.key("abc", {**spec, "config": {"n_mfcc": 13}}) != base
    assert cache.key("abc", {**spec, "version": "2"}) != base
    # dict order does not matter
    assert cache.key("abc", {"config": {"n_mfcc": 40}, "version": "1", "name": "mfcc"}) == base


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_entry_is_a_miss_and_removed(cache, damage):
    key = cache.key("f", {"name": "x"})
    path = cache.put(key, {"x": np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a zip at all")
    else:  # flip bytes inside the stored array: the zip CRC no longer matches
        mid = len(data) // 2
        data[mid : mid + 8] = bytes(255 - b for b in data[mid : mid + 8])
    path.write_bytes(bytes(data))
    assert cache.get(key) is None
    assert not path.exists()


def test_entry_under_wrong_key_is_rejected(cache):
    a, b = cache.key("a", {}), cache.key("b", {})
    pa = cache.put(a, {"x": np.zeros(3)})
    pb = cache.entry_path(b)
    pb.parent.mkdir(parents=True, exist_ok=True)
    pb.write_bytes(pa.read_bytes())  # a copy of a's entry where b's should be
    assert cache.get(b) is None
    np.testing.assert_array_equal(cache.get(a)["x"], np.zeros(3))


def test_disabled_cache_never_hits(tmp_path):
    cache = FeatureCache(tmp_path, enabled=False)
    key = cache.key("a", {})
    cache.put(key, {"x": np.zeros(2)})
    assert cache.get(key) is None
    assert not any(tmp_path.iterdir())


def test_file_digest(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"hello")
    d1 = file_digest(p)
    assert d1 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    q = tmp_path / "b.bin"
    q.write_bytes(b"hello")
    assert file_digest(q) == d1  # content-addressed: same bytes, same digest
    p.write_bytes(b"hello world")  # new size and mtime: recomputed
    assert file_digest(p) != d1
    with pytest.raises(MediaError, match="file not found"):
        file_digest(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match="directory"):
        file_digest(tmp_path)
