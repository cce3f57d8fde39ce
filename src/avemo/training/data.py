"""From takes to the tensors a model consumes, following the model's declared inputs.

A model says what it consumes (``model.inputs``: name -> :class:`~avemo.models.InputSpec`);
:func:`gather` fetches exactly that for a list of takes, without special cases:

* an input whose ``feature`` is a table name (``openface_au_means``) is looked up by take;
* any other input is a registered feature extractor, run (through the cache, in parallel)
  on the take's audio file for audio inputs and its video file for visual inputs.

:class:`Normalizer` holds the per-input statistics fitted on the training takes (and
optionally each speaker's own statistics: speaker-level normalisation), and
:class:`TensorData` turns normalised arrays into a torch ``Dataset``, cropping or padding
sequences to the model's fixed lengths (random crops when training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from avemo.cache.store import FeatureCache
from avemo.datasets.labels import LabelSet
from avemo.datasets.pairing import Take
from avemo.errors import AvemoError, ConfigError, DatasetError
from avemo.features.base import extractor_class, list_extractors
from avemo.features.length import fit_length
from avemo.models.inputs import InputSpec


@dataclass
class Gathered:
    """Raw (not normalised) inputs of the takes that have all of them."""

    takes: list[Take]
    inputs: dict[str, list[np.ndarray]]
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file or take, reason)

    def __len__(self) -> int:
        return len(self.takes)

    def labels(self, label_set: LabelSet) -> np.ndarray:
        return np.array([label_set.index(t.emotion) for t in self.takes], dtype=np.int64)

    @property
    def speakers(self) -> list[str]:
        return [t.speaker for t in self.takes]

    def subset(self, index: Sequence[int]) -> Gathered:
        return Gathered([self.takes[i] for i in index], {k: [v[i] for i in index] for k, v in self.inputs.items()})


def _source(take: Take, spec: InputSpec):
    return take.audio_clip if spec.modality == "audio" else take.video_clip


def gather(
    takes: Sequence[Take],
    specs: Mapping[str, InputSpec],
    *,
    tables: Mapping[str, Any] | None = None,
    cache: FeatureCache,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    perturb: Mapping[str, Any] | None = None,
) -> Gathered:
    """Fetch every input of ``specs`` for ``takes``; takes missing any input are listed in ``failed``.

    ``tables``: name -> :class:`~avemo.datasets.tables.VisualTable` for table inputs.
    ``progress(input_name, done, total)`` is called as extraction proceeds.
    ``perturb``: e.g. ``{"speed": 1.1}`` or ``{"channel": "mp3_16k", "seed": 0}`` (the keyword
    arguments of :class:`~avemo.features.audio.perturb.Perturbed`): audio-extractor inputs are
    computed on the perturbed signal (augmentation, degraded-audio benchmarks); tables and visual
    inputs are unchanged.
    """
    from avemo.extraction import ExtractorSpec, extract_file, run_extraction

    tables = dict(tables or {})
    arrays: dict[str, dict[str, np.ndarray]] = {name: {} for name in specs}
    failed: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.feature in tables:
            table = tables[spec.feature]
            for take in takes:
                clip = _source(take, spec) or next(iter(take))
                row = table.row(clip)
                if row is None:
                    failed.setdefault(take.key, f"{spec.feature} has no row for take {take.key}")
                else:
                    arrays[name][take.key] = np.asarray(row, dtype=np.float32)
            continue
        if spec.feature not in list_extractors():
            raise ConfigError(
                f"input {name!r} needs {spec.feature!r}, which is no feature extractor: it must be given as a "
                f"table (e.g. --visual-table CSV); tables given: {sorted(tables) or 'none'}"
            )
        is_audio = extractor_class(spec.feature).modality == "audio"
        es = ExtractorSpec.of(spec.feature, perturb=dict(perturb) if perturb and is_audio else None, **dict(spec.config))
        extractor = es.build()
        sources = {}
        for take in takes:
            clip = _source(take, spec)
            if clip is None:
                failed.setdefault(take.key, f"take {take.key} has no {spec.modality} file")
            else:
                sources[take.key] = clip.path
        paths = sorted(set(map(str, sources.values())))
        def tick(_outcome, name=name, total=len(paths), done=[0]):  # noqa: B006 - a per-input counter
            done[0] += 1
            if progress is not None:
                progress(name, done[0], total)

        report = run_extraction(
            paths,
            [es],
            cache=cache,
            workers=workers,
            executor=executor,
            address=address,
            progress=tick,
        )
        errors = {o.path: next(iter(o.errors.values())) for o in report.failed}
        for key, path in sources.items():
            if str(path) in errors:
                failed.setdefault(key, f"{path}: {spec.feature}: {errors[str(path)]}")
                continue
            outcome, feats = extract_file(path, [extractor], cache, keep=True)
            if outcome.errors:
                failed.setdefault(key, f"{path}: {spec.feature}: {outcome.errors[extractor.name]}")
            else:
                arrays[name][key] = feats[extractor.name]["x"]
    kept = [t for t in takes if t.key not in failed]
    return Gathered(
        takes=kept,
        inputs={name: [arrays[name][t.key] for t in kept] for name in specs},
        failed=sorted(failed.items()),
    )


# ----------------------------------------------------------------------------- normalisation


def _rows(x: np.ndarray, kind: str) -> np.ndarray:
    """The rows statistics are taken over: frames of a sequence, the vector itself."""
    return x.reshape(-1, x.shape[-1]) if kind == "sequence" else x.reshape(1, -1)


def _stats(arrays: Sequence[np.ndarray], kind: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([_rows(np.asarray(a, dtype=np.float64), kind) for a in arrays])
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)  # constant dims are centred, not blown up
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class Normalizer:
    """Per-input standardisation fitted on training data.

    ``speaker_norm``: first z-normalise each speaker's arrays with that speaker's own
    statistics (all their takes in the set being transformed; needs several takes per
    speaker at test time), then apply the global training statistics. Frames are only
    scaled to [0, 1].
    """

    kinds: dict[str, str]
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    std: dict[str, np.ndarray] = field(default_factory=dict)
    speaker_norm: bool = False

    @classmethod
    def fit(cls, data: Gathered, specs: Mapping[str, InputSpec], *, speaker_norm: bool = False) -> Normalizer:
        norm = cls({n: s.kind for n, s in specs.items()}, speaker_norm=speaker_norm)
        pre = norm._per_speaker(data) if speaker_norm else data.inputs
        for name, kind in norm.kinds.items():
            if kind != "frames":
                norm.mean[name], norm.std[name] = _stats(pre[name], kind)
        return norm

    def _per_speaker(self, data: Gathered) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        speakers = np.array(data.speakers)
        for name, kind in self.kinds.items():
            arrays = list(data.inputs[name])
            if kind != "frames":
                for spk in np.unique(speakers):
                    idx = np.nonzero(speakers == spk)[0]
                    mean, std = _stats([arrays[i] for i in idx], kind)
                    for i in idx:
                        arrays[i] = (np.asarray(arrays[i], dtype=np.float32) - mean) / std
            out[name] = arrays
        return out

    def transform(self, data: Gathered) -> dict[str, list[np.ndarray]]:
        pre = self._per_speaker(data) if self.speaker_norm else data.inputs
        out = {}
        for name, kind in self.kinds.items():
            if kind == "frames":
                out[name] = [np.asarray(a) for a in pre[name]]
            else:
                m, s = self.mean[name], self.std[name]
                out[name] = [((np.asarray(a, dtype=np.float32) - m) / s).astype(np.float32) for a in pre[name]]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "speaker_norm": self.speaker_norm,
            "kinds": dict(self.kinds),
            "mean": {k: v.tolist() for k, v in self.mean.items()},
            "std": {k: v.tolist() for k, v in self.std.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        try:
            return cls(
                kinds=dict(data["kinds"]),
                mean={k: np.asarray(v, dtype=np.float32) for k, v in data["mean"].items()},
                std={k: np.asarray(v, dtype=np.float32) for k, v in data["std"].items()},
                speaker_norm=bool(data["speaker_norm"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed normalisation statistics ({exc})") from None


# ----------------------------------------------------------------------------- torch dataset


class TensorData(torch.utils.data.Dataset):
    """Normalised arrays + labels as a torch Dataset of ``(dict[name, tensor], label)`` items.

    Sequences with a fixed length in their spec are centre-cropped / zero-padded, or, when
    ``train`` is true, randomly cropped (a cheap augmentation), with a per-item generator
    derived from ``seed`` and the epoch so that runs are reproducible.
    """

    def __init__(
        self,
        inputs: Mapping[str, Sequence[np.ndarray]],
        labels: np.ndarray,
        specs: Mapping[str, InputSpec],
        *,
        train: bool = False,
        seed: int = 0,
    ):
        n = len(labels)
        for name, arrays in inputs.items():
            if len(arrays) != n:
                raise ValueError(f"input {name!r} has {len(arrays)} items for {n} labels")
        self.inputs = {k: list(v) for k, v in inputs.items()}
        self.labels = np.asarray(labels, dtype=np.int64)
        self.specs = dict(specs)
        self.train = train
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_inputs(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.train else None
        out = {}
        for name, spec in self.specs.items():
            x = self.inputs[name][i]
            if spec.kind == "sequence" and spec.shape and spec.shape[0] is not None:
                x = fit_length(x, int(spec.shape[0]), crop="random" if self.train else "center", pad="zeros", rng=rng)
            if spec.kind == "frames":
                t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
                if t.ndim == 4 and t.shape[-1] not in (1, 3):  # gray frames stored (N, H, W)
                    t = t.unsqueeze(-1)
                elif t.ndim == 3:
                    t = t.unsqueeze(-1)
            else:
                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            out[name] = t
        return out

    def __getitem__(self, i: int):
        return self.item_inputs(i), int(self.labels[i])


def collate(batch):
    """Stack items; free-length sequences are zero-padded to the longest in the batch."""
    names = batch[0][0].keys()
    out = {}
    for name in names:
        tensors = [item[0][name] for item in batch]
        if len({t.shape for t in tensors}) > 1:
            if tensors[0].ndim != 2:
                raise AvemoError(f"input {name!r}: items of different shapes cannot be batched")
            length = max(t.shape[0] for t in tensors)
            tensors = [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[0])) for t in tensors]
        out[name] = torch.stack(tensors)
    return out, torch.tensor([item[1] for item in batch], dtype=torch.long)


def as_batch(data: TensorData) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """All items of ``data`` as one batch, without training-time cropping (the data as evaluated)."""
    was_training, data.train = data.train, False
    try:
        return collate([data[i] for i in range(len(data))])
    finally:
        data.train = was_training


def concat(parts: Sequence[Gathered]) -> Gathered:
    """Several Gathered sets as one (e.g. the originals and their perturbed copies)."""
    names = list(parts[0].inputs)
    return Gathered(
        takes=[t for p in parts for t in p.takes],
        inputs={n: [a for p in parts for a in p.inputs[n]] for n in names},
        failed=[f for p in parts for f in p.failed],
    )


def check_labels(data: Gathered, label_set: LabelSet) -> None:
    """Every take's emotion must be in ``label_set`` (a clear error otherwise)."""
    foreign = sorted({t.emotion for t in data.takes if t.emotion not in label_set}, key=str)
    if foreign:
        raise DatasetError(f"emotions {foreign} are not in label set {label_set.name} {list(label_set.emotions)}")
