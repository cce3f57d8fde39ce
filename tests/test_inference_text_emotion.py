"""The bundled MELD text checkpoint on single utterances (avemo.inference.text_emotion)."""

from __future__ import annotations

import numpy as np
import pytest

from avemo.errors import FeatureError
from avemo.inference.text_emotion import DEFAULT_TEXT_MODEL, TextEmotion


@pytest.fixture(scope="module")
def model():
    return TextEmotion.load()


def test_bundled_checkpoint_is_small_and_text_only(model):
    assert sum(p.stat().st_size for p in DEFAULT_TEXT_MODEL.iterdir()) < 5 * 1024 * 1024
    assert model.labels == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert model.checkpoint.model.dialogue_context == 0


def test_probabilities_per_utterance_do_not_depend_on_the_batch(model):
    texts = ["I can't believe you did that to me!", "Thanks, that's really great.", "Okay."]
    probs = model.predict(texts)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.predict(texts[1:2])[0], probs[1], rtol=1e-4, atol=1e-6)
    assert model.predict([]).shape == (0, 7)


def test_empty_text_is_a_one_line_error(model):
    with pytest.raises(FeatureError) as err:
        model.predict(["fine", "  "])
    assert "text 1 is empty" in str(err.value) and "\n" not in str(err.value)
