"""Degraded copies of training clips (``TrainConfig.augment.channels``): training augmentation
with the transmission channels of :mod:`avemo.media.channels`.

:func:`plan_copies` says which training clips get copies and through which channels, from the
config alone (:class:`~avemo.training.config.ChannelAugmentConfig`):

* a clip is chosen when ``CRC32("clip id/seed") < fraction * 2**32`` (every clip by
  default), so the choice does not depend on the other clips or on the order of the takes;
* its copies (slots ``0 .. copies-1``): with ``gain_copy``, ``copies - 1`` copies of distinct
  kinds drawn from ``kinds`` then one gain-only copy; each copy's parameters are drawn from the
  config's ranges by a generator seeded with ``(seed, item)``, ``item = CRC32("clip id/slot")``,
  and the channel is applied with that ``seed`` and ``item``: a copy is the same in every run;
* a babble copy mixes ``babble_talkers`` clips of *other training speakers* (distinct speakers
  while there are enough), so no validation or test speaker is ever heard in training.

:func:`channel_copies` computes the copies' features: every audio-extractor input of the model
is extracted from the degraded signal through the feature cache
(:class:`~avemo.features.audio.perturb.Perturbed`: the key holds the channel, the seed, the
item and the talkers' content hashes), so a rerun or a rebuild reuses them; table and video
inputs are the clip's own. A copy keeps its clip's take (speaker, emotion, dataset): it stays
on its clip's side of every split, and copies are only ever made of the training takes given.

A channel this machine cannot apply (a codec missing from the PyAV build) is reported once and
its copies are skipped, never replaced by another channel.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avemo.cache.store import FeatureCache
from avemo.datasets.pairing import Take
from avemo.errors import AvemoError, CacheError
from avemo.media.channels import Channel, ChannelUnavailableError, parse_channel
from avemo.models.inputs import InputSpec
from avemo.training.config import ChannelAugmentConfig
from avemo.training.data import Gathered

log = logging.getLogger(__name__)


def crc32(text: str) -> int:
    """CRC32 of a text's UTF-8 bytes (a non-negative 32-bit integer)."""
    return zlib.crc32(text.encode("utf-8"))


def is_chosen(take: Take, config: ChannelAugmentConfig) -> bool:
    """Whether ``take`` gets copies: CRC32 of ``"clip id/seed"`` below ``fraction`` of 2**32."""
    return crc32(f"{take.key}/{config.seed}") < config.fraction * 2**32


@dataclass(frozen=True)
class ChannelCopy:
    """One degraded copy: ``take`` through ``channel`` with ``item``; ``sources``: the babble talkers' files."""

    take: Take
    slot: int
    channel: Channel
    item: int
    sources: tuple[str, ...] = ()

    def perturb(self, seed: int) -> dict[str, Any]:
        """The keyword arguments of :class:`~avemo.features.audio.perturb.Perturbed` for this copy."""
        out: dict[str, Any] = {"channel": self.channel.spec, "seed": seed, "item": self.item}
        if self.sources:
            out["sources"] = self.sources
        return out


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    """A value drawn uniformly in ``[low, high]``, rounded to 0.1 (readable channel names)."""
    return round(float(rng.uniform(bounds[0], bounds[1])), 1)


def _pick(rng: np.random.Generator, values: Sequence[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def draw_channel(kind: str, rng: np.random.Generator, config: ChannelAugmentConfig) -> Channel:
    """A channel of ``kind`` with its parameters drawn from ``config``'s ranges."""
    if kind == "codec":
        codec = _pick(rng, config.codecs)
        table = {"codec": codec, "kbps": float(_pick(rng, getattr(config, f"{codec}_kbps")))}
    elif kind == "telephone":
        table = {"mulaw": bool(rng.random() < config.telephone_g711)}
    elif kind == "noise":
        table = {"kind": _pick(rng, config.noise_colors), "snr": _uniform(rng, config.noise_snr)}
    elif kind == "babble":
        table = {"snr": _uniform(rng, config.babble_snr), "talkers": config.babble_talkers}
    elif kind == "reverb":
        table = {"rt60": float(_pick(rng, config.reverb_rt60)), "rooms": config.reverb_rooms}
    else:
        table = {"db": _uniform(rng, config.gain_db)}
    return parse_channel({"kind": kind, "config": table})


def _talkers(take: Take, by_speaker: Mapping[str, list[str]], n: int, rng: np.random.Generator) -> tuple[str, ...]:
    """``n`` audio files of speakers other than ``take``'s (from ``by_speaker``: the training
    takes), one per speaker in a random order of the speakers, cycling when there are fewer."""
    others = [s for s in sorted(by_speaker) if s != take.speaker]
    pool = sum(len(by_speaker[s]) for s in others)
    if pool < n:
        return ()
    order = [others[int(i)] for i in rng.permutation(len(others))]
    chosen: list[str] = []
    i = 0
    while len(chosen) < n:
        files = [f for f in by_speaker[order[i % len(order)]] if f not in chosen]
        if files:
            chosen.append(_pick(rng, files))
        i += 1
    return tuple(chosen)


def plan_copies(takes: Sequence[Take], config: ChannelAugmentConfig) -> tuple[list[ChannelCopy], list[str]]:
    """The copies of ``takes`` (the training takes: the only ones copied, and the only source of
    babble talkers) and the one-line reasons of the copies skipped (each reason once)."""
    audio = [t for t in takes if "audio" in t]
    by_speaker: dict[str, list[str]] = {}
    for t in audio:
        by_speaker.setdefault(t.speaker, []).append(str(t["audio"].path))
    by_speaker = {s: sorted(files) for s, files in by_speaker.items()}  # independent of the takes' order
    kinds = sorted(set(config.kinds))
    copies: list[ChannelCopy] = []
    skipped: dict[str, None] = {}
    for take in audio:
        if config.corpora and take.dataset not in config.corpora or not is_chosen(take, config):
            continue
        rng = np.random.default_rng([config.seed, crc32(take.key)])
        drawn = config.copies - int(config.gain_copy)
        slots = [kinds[int(i)] for i in rng.choice(len(kinds), size=drawn, replace=False)]
        slots += ["gain"] * int(config.gain_copy)
        for slot, kind in enumerate(slots):
            item = crc32(f"{take.key}/{slot}")
            prng = np.random.default_rng([config.seed, item])
            channel = draw_channel(kind, prng, config)
            try:
                channel.check()
            except ChannelUnavailableError as exc:
                skipped.setdefault(f"{exc.reason}; its copies are skipped")
                continue
            sources = _talkers(take, by_speaker, config.babble_talkers, prng) if kind == "babble" else ()
            if kind == "babble" and not sources:
                skipped.setdefault(f"babble needs {config.babble_talkers} clips of other training speakers; "
                                   "its copies are skipped")
                continue
            copies.append(ChannelCopy(take, slot, channel, item, sources))
    for reason in skipped:
        log.warning("channel augmentation: %s", reason)
    return copies, list(skipped)


def _audio_inputs(specs: Mapping[str, InputSpec]) -> dict[str, InputSpec]:
    """The inputs computed by an audio feature extractor (those a channel changes)."""
    from avemo.features.base import extractor_class, list_extractors

    return {n: s for n, s in specs.items()
            if s.feature in list_extractors() and extractor_class(s.feature).modality == "audio"}


@dataclass
class CopiesReport:
    """What :func:`channel_copies` made: the copies, and what it skipped (channels, failed files)."""

    clips: int
    copies: int
    skipped: list[str]
    failed: list[tuple[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {"clips": self.clips, "copies": self.copies, "skipped": list(self.skipped),
                "failed": [list(f) for f in self.failed]}


def channel_copies(train: Gathered, specs: Mapping[str, InputSpec], config: ChannelAugmentConfig, *,
                   cache: FeatureCache) -> tuple[Gathered, CopiesReport]:
    """The degraded copies of the training set ``train`` (its gathered inputs) for a model's ``specs``."""
    from avemo.extraction import ExtractorSpec, extract_file

    audio = _audio_inputs(specs)
    names = list(train.inputs)
    out = Gathered(takes=[], inputs={n: [] for n in names})
    plan, skipped = plan_copies(train.takes, config) if audio else ([], [])
    index = {t.key: i for i, t in enumerate(train.takes)}
    for n, copy in enumerate(plan, 1):
        i = index[copy.take.key]
        row = {name: train.inputs[name][i] for name in names}
        for name, spec in audio.items():
            path = copy.take[spec.modality].path
            es = ExtractorSpec.of(spec.feature, perturb=copy.perturb(config.seed), **dict(spec.config))
            try:
                outcome, feats = extract_file(path, [es.build()], cache, keep=True)
            except CacheError:
                raise  # the cache cannot be written (a full disk): every copy would fail
            except AvemoError as exc:
                outcome, feats = None, {}
                out.failed.append((f"{path} ({copy.channel.name})", exc.reason))
            if outcome is not None and outcome.errors:
                out.failed.append((f"{path} ({copy.channel.name})", next(iter(outcome.errors.values()))))
            for line in outcome.warnings if outcome is not None else ():  # cached: said when the originals were read
                log.warning("%s (%s): %s", path, copy.channel.name, line)
            if spec.feature not in feats:
                row = None
                break
            row[name] = feats[spec.feature]["x"]
        if row is not None:
            out.takes.append(copy.take)
            for name in names:
                out.inputs[name].append(row[name])
        if n % 100 == 0:
            log.info("channel augmentation: %d / %d copies", n, len(plan))
    report = CopiesReport(clips=len({c.take.key for c in plan}), copies=len(out), skipped=skipped,
                          failed=list(out.failed))
    log.info("channel augmentation: %d copies of %d training clips (%d skipped by reason, %d failed)",
             report.copies, report.clips, len(report.skipped), len(report.failed))
    return out, report


__all__ = ["ChannelCopy", "CopiesReport", "channel_copies", "crc32", "draw_channel", "is_chosen", "plan_copies"]
