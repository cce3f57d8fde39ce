"""From normalised arrays to the tensors a model consumes, following its :class:`InputSpec`s.

:class:`TensorData` is the one place where arrays become model inputs: sequences with a fixed
length in their spec are cropped or padded to it; frames keep the dtype they are stored in
(uint8 pixels from the ``face_crops`` cache) through batching, and :func:`to_device` moves a
batch to the model's device and scales frames to float32 in [0, 1] there: a quarter of the
bytes cross to a GPU, and the conversion runs on it. The trainer, the evaluation and the
predictor all go through these, so that what a model sees at prediction time is what it saw
in training.

**Dialogue windows.** For a model with ``dialogue_context = H`` (not ``None``), each item also
carries, for every input ``name`` (paper 002, Gao & Guo, "Multimodal emotion recognition based on
fusion with residual connection", §3.1 eq. 1):

* ``name_mask`` ``(T,)`` bool, True at real steps (sequence inputs only): after batching, the
  padded steps are False;
* with ``H > 0``: ``name_context`` ``(H, *shape)``, the ``H`` previous utterances of the same
  dialogue, oldest first and right-aligned (a window shorter than ``H``, at a dialogue's start, has
  its missing utterances first, all zeros), and ``name_context_mask``: ``(H, T)`` for sequences,
  ``(H,)`` otherwise, False for padding and for missing utterances.

Batched, these become ``(B, T)``, ``(B, H, T, D)`` and ``(B, H, T)`` (or ``(B, H)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from avemo.errors import AvemoError
from avemo.features.length import fit_length
from avemo.models.inputs import InputSpec


class TensorData(torch.utils.data.Dataset):
    """Normalised arrays + labels as a torch Dataset of ``(dict[name, tensor], label)`` items.

    Sequences with a fixed length in their spec are centre-cropped / zero-padded, or, when
    ``train`` is true, randomly cropped (a cheap augmentation), with a per-item generator
    derived from ``seed`` and the epoch so that runs are reproducible.

    ``groups`` (n,): each item's corpus index in a multi-corpus run with sample weights or masked
    labels (:class:`~avemo.training.corpora.CorpusObjective`); items are then ``(inputs, (label,
    group))`` and a batch's targets a (B, 2) long tensor.
    """

    def __init__(
        self,
        inputs: Mapping[str, Sequence[np.ndarray]],
        labels: np.ndarray,
        specs: Mapping[str, InputSpec],
        *,
        train: bool = False,
        seed: int = 0,
        groups: np.ndarray | None = None,
        context: int | None = None,
        previous: Sequence[Sequence[int]] | None = None,
    ):
        """``context``: the model's ``dialogue_context`` (``None``: single clips); ``previous[i]``:
        the indices of item ``i``'s previous utterances in this dataset, oldest first (needed when
        ``context > 0``; the last ``context`` of them are used)."""
        n = len(labels)
        if groups is not None and len(groups) != n:
            raise ValueError(f"{len(groups)} groups for {n} labels")
        for name, arrays in inputs.items():
            if len(arrays) != n:
                raise ValueError(f"input {name!r} has {len(arrays)} items for {n} labels")
        if context is not None and context > 0 and (previous is None or len(previous) != n):
            raise ValueError(f"a dialogue context of {context} needs the previous utterances of all {n} items")
        self.context = context
        self.previous = [list(p) for p in previous] if previous is not None else None
        self.inputs = {k: list(v) for k, v in inputs.items()}
        self.labels = np.asarray(labels, dtype=np.int64)
        self.specs = dict(specs)
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.groups = None if groups is None else np.asarray(groups, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_inputs(self, i: int) -> dict[str, torch.Tensor]:
        out = self._tensors(i)
        if self.context is None:
            return out
        window = self.previous[i][len(self.previous[i]) - self.context:] if self.context else []
        for name, spec in list(self.specs.items()):
            x = out[name]
            if spec.kind == "sequence":
                out[name + MASK] = torch.ones(x.shape[0], dtype=torch.bool)
            if self.context:
                out[name + CONTEXT], out[name + CONTEXT + MASK] = self._context(name, spec, window)
        return out

    def _context(self, name: str, spec: InputSpec, window: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, *shape)`` previous utterances of ``name`` (right-aligned, zeros where missing) and their mask."""
        items = [self._tensors(j)[name] for j in window]
        reference = items[0] if items else self._tensors(0)[name]
        shape = [max([t.shape[0] for t in items] + [1]), *reference.shape[1:]] if spec.kind == "sequence" \
            else list(reference.shape)
        x = torch.zeros((self.context, *shape), dtype=reference.dtype)
        mask = torch.zeros((self.context, shape[0]) if spec.kind == "sequence" else (self.context,), dtype=torch.bool)
        start = self.context - len(items)
        for k, t in enumerate(items, start):
            if spec.kind == "sequence":
                x[k, : t.shape[0]] = t
                mask[k, : t.shape[0]] = True
            else:
                x[k] = t
                mask[k] = True
        return x, mask

    def _tensors(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.train else None
        out = {}
        for name, spec in self.specs.items():
            x = self.inputs[name][i]
            if spec.kind == "sequence" and spec.shape and spec.shape[0] is not None:
                x = fit_length(x, int(spec.shape[0]), crop="random" if self.train else "center", pad="zeros", rng=rng)
            if spec.kind == "frames":  # stored dtype (uint8): scaled to [0, 1] by to_device
                t = torch.from_numpy(np.ascontiguousarray(x))
                if t.ndim == 4 and t.shape[-1] not in (1, 3):  # gray frames stored (N, H, W)
                    t = t.unsqueeze(-1)
                elif t.ndim == 3:
                    t = t.unsqueeze(-1)
            else:
                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            out[name] = t
        return out

    def __getitem__(self, i: int):
        label = int(self.labels[i])
        return self.item_inputs(i), (label if self.groups is None else (label, int(self.groups[i])))


#: suffixes of the dialogue-window entries of a batch (see the module docstring)
MASK = "_mask"
CONTEXT = "_context"


def is_dialogue_key(name: str) -> bool:
    """True for the masks and contexts a dialogue batch carries next to its inputs."""
    return name.endswith((MASK, CONTEXT))


def collate(batch):
    """Stack items; free-length sequences (and a dialogue batch's masks and contexts) are padded
    with zeros (False) to the longest in the batch."""
    names = batch[0][0].keys()
    out = {}
    for name in names:
        tensors = [item[0][name] for item in batch]
        if len({t.shape for t in tensors}) > 1:
            if tensors[0].ndim != 2 and not is_dialogue_key(name):
                raise AvemoError(f"input {name!r}: items of different shapes cannot be batched")
            tensors = _pad_all(tensors)
        out[name] = torch.stack(tensors)
    return out, torch.tensor([item[1] for item in batch], dtype=torch.long)


def _pad_all(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors of one rank zero-padded at the end of every dim to the largest size in ``tensors``."""
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].ndim)]
    out = []
    for t in tensors:
        padded = t.new_zeros(shape)
        padded[tuple(slice(0, s) for s in t.shape)] = t
        out.append(padded)
    return out


def to_device(inputs: Mapping[str, torch.Tensor], specs: Mapping[str, InputSpec], device: torch.device | str,
              *, non_blocking: bool = False) -> dict[str, torch.Tensor]:
    """A collated batch on ``device`` as the model consumes it: frames (any stored dtype) become
    float32 scaled to [0, 1] after the move (on the device), other inputs are moved as they are.

    The scaling is elementwise, so it gives the same numbers on the batch as on single items."""
    out = {}
    for name, x in inputs.items():
        x = x.to(device, non_blocking=non_blocking)
        base = name if name in specs else name.removesuffix(MASK).removesuffix(CONTEXT)
        if specs[base].kind == "frames" and x.dtype != torch.bool:  # in place only on the copy .float() makes of integer pixels
            x = x.float() / 255.0 if x.is_floating_point() else x.float().div_(255.0)
        out[name] = x
    return out


def as_batch(data: TensorData) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """All items of ``data`` as one batch on the CPU, as the model consumes it, without
    training-time cropping (the data as evaluated)."""
    was_training, data.train = data.train, False
    try:
        inputs, labels = collate([data[i] for i in range(len(data))])
        return to_device(inputs, data.specs, "cpu"), labels
    finally:
        data.train = was_training
