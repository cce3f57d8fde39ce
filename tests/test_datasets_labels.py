"""Label sets, the maps between them, and their agreement with the readers' emotion codes."""

from __future__ import annotations

import numpy as np
import pytest

from avemo.datasets import (
    CREMA_D,
    DATASET_LABEL_SETS,
    EMODB,
    FER2013,
    IEMOCAP4,
    MELD,
    RAVDESS,
    LabelSet,
    crema_d,
    emodb,
    get_label_set,
    label_map,
    ravdess,
)
from avemo.errors import ConfigError


def test_readers_produce_exactly_their_label_sets():
    assert tuple(ravdess.EMOTIONS.values()) == RAVDESS.emotions
    assert set(crema_d.EMOTIONS.values()) == set(CREMA_D)
    assert set(emodb.EMOTIONS.values()) == set(EMODB)
    assert DATASET_LABEL_SETS == {"ravdess": RAVDESS, "crema_d": CREMA_D, "emodb": EMODB, "meld": MELD,
                                  "iemocap": IEMOCAP4}


def test_ravdess_to_crema_d_drops_calm_and_surprised_with_notes():
    m = label_map("ravdess", "crema_d")
    assert m.dropped == ("calm", "surprised")
    assert m("fearful") == "fearful" and m("calm") is None
    assert "calm" in m.notes and "surprised" in m.notes
    matrix = m.matrix()
    assert matrix.shape == (8, 6)
    assert matrix.sum(axis=1).tolist() == [1, 0, 1, 1, 1, 1, 1, 0]
    probs = np.eye(8, dtype=np.float32)[RAVDESS.index("angry")]
    assert CREMA_D.emotions[int(np.argmax(probs @ matrix))] == "angry"


def test_other_maps():
    assert label_map(EMODB, RAVDESS).dropped == ("boredom",)
    assert label_map("fer2013", "ravdess").dropped == ()
    assert label_map("ravdess", "fer2013").dropped == ("calm",)
    same = label_map("emodb", "emodb")
    assert same.dropped == () and np.array_equal(same.matrix(), np.eye(len(EMODB)))
    assert FER2013.index("neutral") == 6


def test_label_set_errors():
    with pytest.raises(ConfigError, match="unknown label set 'iemocap'"):
        get_label_set("iemocap")
    with pytest.raises(ConfigError, match="repeats an emotion"):
        LabelSet("x", ("happy", "happy"))
    with pytest.raises(ConfigError, match="not in label set"):
        RAVDESS.index("boredom")
    with pytest.raises(ConfigError, match="not in label set"):
        label_map("ravdess", "crema_d")("boredom")
    assert LabelSet.from_dict(RAVDESS.to_dict()) == RAVDESS
