"""Emotion from what was said: a text checkpoint run on single utterances (no dialogue context).

The bundled checkpoint (``src/avemo/inference/text_model``, see its ``MODEL_CARD.md``) is
``gao_dialogue`` with ``modalities=["text"]``, ``context=0`` on the all-MiniLM-L6-v2 sentence
embedding (``minilm``), trained on MELD's train split and selected on dev. Its labels are MELD's
seven in avemo's names (``neutral, happy, sad, angry, fearful, disgust, surprised``; MELD's joy is
``happy``, and there is no ``calm``)::

    from avemo.inference.text_emotion import TextEmotion

    model = TextEmotion.load()                      # or TextEmotion.load("runs/my_text_model")
    probs = model.predict(["I can't believe you did that!", "Thanks, that's great."])  # (2, 7)
    model.labels                                    # ('neutral', 'happy', ...)

Any checkpoint of a model whose only input is text and whose ``dialogue_context`` is 0 or None
works (a dialogue model with ``H > 0`` is given no previous utterance, as at a dialogue's start),
unless it was trained on speaker names (``speaker_prefix``: a transcript has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import CheckpointError, FeatureError

#: the bundled text checkpoint
DEFAULT_TEXT_MODEL = Path(__file__).resolve().parent / "text_model"


@dataclass
class TextEmotion:
    """A loaded text checkpoint: :meth:`predict` gives class probabilities for each text."""

    checkpoint: object  # avemo.models.checkpoint.Checkpoint

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TEXT_MODEL) -> TextEmotion:
        from avemo.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        if {s.modality for s in ckpt.inputs.values()} != {"text"}:
            raise CheckpointError(f"not a text-only model (inputs: {', '.join(sorted(ckpt.inputs))})", path)
        if any(s.speaker_prefix for s in ckpt.inputs.values()):
            raise CheckpointError("the model reads 'Speaker: text' (speaker_prefix) and a transcript has no "
                                  "speaker name: train a text model without speaker_prefix", path)
        return cls(ckpt)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.checkpoint.labels.emotions)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``(len(texts), len(labels))``; an empty text is a one-line FeatureError."""
        import torch

        from avemo.features import get_extractor
        from avemo.models.batching import TensorData, as_batch
        from avemo.models.normalization import ArraySet

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise FeatureError(f"text {empty[0]} is empty: nothing to classify")
        arrays = {}
        for name, spec in self.checkpoint.inputs.items():
            extractor = get_extractor(spec.feature, **dict(spec.config))
            arrays[name] = [f["x"] for f in extractor.from_texts(texts)]
        model = self.checkpoint.model
        context = model.dialogue_context
        data = TensorData(self.checkpoint.normalizer.transform(ArraySet(arrays)), np.zeros(len(texts), dtype=np.int64),
                          self.checkpoint.inputs, context=context,
                          previous=[[] for _ in texts] if context else None)
        model.eval()
        with torch.no_grad():
            return torch.softmax(model(as_batch(data)[0]).float(), dim=1).numpy()
