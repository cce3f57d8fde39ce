"""Training configuration: plain dataclasses with defaults, loadable from TOML/YAML/JSON.

Example TOML (``avemo train --config train.toml``)::

    epochs = 80
    lr = 0.001
    monitor = "val_accuracy"
    speaker_norm = true

    [augment]
    specaugment = true
    mixup_alpha = 0.2

    [augment.channels]          # degraded copies of training clips (ChannelAugmentConfig)
    enabled = true
    noise_snr = [5.0, 20.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from avemo.errors import ConfigError

CHANNEL_KINDS = ("codec", "telephone", "noise", "babble", "reverb", "gain")


@dataclass(frozen=True)
class ChannelAugmentConfig:
    """Degraded copies of training clips: their audio passed through transmission channels
    (:mod:`avemo.media.channels`), extracted and cached like the originals
    (:mod:`avemo.training.channel_copies`). Off unless ``enabled``.

    * ``fraction`` of the training clips get copies, chosen by CRC32 of ``"clip id/seed"``;
      each gets ``copies`` copies: with ``gain_copy``, one gain-only copy and ``copies - 1``
      copies of distinct kinds drawn from ``kinds``; without, ``copies`` distinct kinds.
    * Parameters are drawn per copy from the ranges below (``[low, high]`` pairs are uniform,
      other tuples are choices): a codec from ``codecs`` at one of its bit rates (kbit/s),
      the telephone band with G.711 mu-law with probability ``telephone_g711``, a noise colour
      at ``noise_snr`` dB, ``babble_talkers`` talkers of other *training* speakers at
      ``babble_snr`` dB, reverberation with an RT60 from ``reverb_rt60`` in one of
      ``reverb_rooms`` rooms, a gain in ``gain_db`` dB.
    * ``seed`` draws everything; a copy's channel seed is ``seed`` and its item CRC32 of
      ``"clip id/slot"``, so a copy is the same in every run and is found in the feature cache.
    * ``corpora``: the corpora whose clips get copies (``Take.dataset``: the reader name, or the
      corpus name in a multi-corpus run); empty: all.

    The defaults are the recipe chosen on validation data with a linear head on Whisper features
    (``fraction`` 1.0 over 0.25 on the degraded validation speakers of the generalisation benchmark's
    select part); every clip then costs its own extraction and three more.
    """

    enabled: bool = False
    fraction: float = 1.0
    copies: int = 3
    gain_copy: bool = True
    kinds: tuple[str, ...] = CHANNEL_KINDS
    seed: int = 1000
    corpora: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ("mp3", "aac", "opus")
    mp3_kbps: tuple[float, ...] = (16.0, 24.0, 32.0)
    aac_kbps: tuple[float, ...] = (16.0, 24.0, 32.0)
    opus_kbps: tuple[float, ...] = (8.0, 12.0, 16.0, 24.0)
    telephone_g711: float = 0.5
    noise_colors: tuple[str, ...] = ("white", "pink", "brown")
    noise_snr: tuple[float, float] = (5.0, 20.0)
    babble_snr: tuple[float, float] = (5.0, 20.0)
    babble_talkers: int = 4
    reverb_rt60: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    reverb_rooms: int = 8
    gain_db: tuple[float, float] = (-25.0, 10.0)

    def __post_init__(self) -> None:
        where = "augment.channels"
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"{where}.fraction must be in (0, 1], got {self.fraction}")
        unknown = sorted(set(self.kinds) - set(CHANNEL_KINDS))
        if unknown or not self.kinds:
            raise ConfigError(f"{where}.kinds: unknown {unknown or 'none given'}; choose from {list(CHANNEL_KINDS)}")
        drawn = self.copies - int(self.gain_copy)
        if self.copies < 1 or drawn > len(set(self.kinds)):
            raise ConfigError(f"{where}.copies must be at least 1 and leave at most {len(set(self.kinds))} copies "
                              f"of distinct kinds, got {self.copies} (gain_copy={self.gain_copy})")
        if not set(self.codecs) <= {"mp3", "aac", "opus"} or not self.codecs:
            raise ConfigError(f"{where}.codecs must be a subset of mp3, aac, opus, got {list(self.codecs)}")
        if not set(self.noise_colors) <= {"white", "pink", "brown"} or not self.noise_colors:
            raise ConfigError(f"{where}.noise_colors must be a subset of white, pink, brown, got {list(self.noise_colors)}")
        for name in ("noise_snr", "babble_snr", "gain_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"{where}.{name} must be [low, high], got {[low, high]}")
        for name in ("mp3_kbps", "aac_kbps", "opus_kbps", "reverb_rt60"):
            if not getattr(self, name):
                raise ConfigError(f"{where}.{name} needs at least one value")
        if not 0.0 <= self.telephone_g711 <= 1.0:
            raise ConfigError(f"{where}.telephone_g711 is a probability, got {self.telephone_g711}")
        if self.seed < 0 or self.babble_talkers < 1 or self.reverb_rooms < 1:
            raise ConfigError(f"{where}: seed must be >= 0, babble_talkers and reverb_rooms >= 1")


@dataclass(frozen=True)
class AugmentConfig:
    """Data augmentation (training only). All off by default except random crops of long sequences.

    * ``specaugment``: SpecAugment-style masks on sequence inputs (Park et al. 2019): ``time_masks``
      masks of up to ``time_mask`` frames and ``freq_masks`` masks of up to ``freq_mask`` dims,
      set to 0 (the training mean, since inputs are standardised).
    * ``noise_std``: Gaussian noise added to standardised sequence and vector inputs.
    * ``mixup_alpha``: mixup (Zhang et al. 2018) of whole batches, Beta(alpha, alpha) weights.
    * ``modality_dropout``: probability that one modality's inputs of an example are zeroed
      (never all modalities of one example), so fusion models learn to cope with a missing one.
    * ``speed`` / ``pitch``: extra copies of every training clip with the audio sped up or
      slowed down by these factors (Ko et al. 2015) or pitch-shifted by these semitones,
      extracted (and cached) like the originals.
    * ``channels``: degraded copies of training clips (codecs, telephone, noise, babble,
      reverberation, gain): :class:`ChannelAugmentConfig`.
    """

    random_crop: bool = True
    specaugment: bool = False
    time_masks: int = 2
    time_mask: int = 20
    freq_masks: int = 2
    freq_mask: int = 8
    noise_std: float = 0.0
    mixup_alpha: float = 0.0
    modality_dropout: float = 0.0
    speed: tuple[float, ...] = ()
    pitch: tuple[float, ...] = ()
    channels: ChannelAugmentConfig = field(default_factory=ChannelAugmentConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.modality_dropout < 1:
            raise ConfigError(f"augment.modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if self.mixup_alpha < 0 or self.noise_std < 0:
            raise ConfigError("augment.mixup_alpha and augment.noise_std must be >= 0")
        if any(s <= 0 for s in self.speed):
            raise ConfigError(f"augment.speed factors must be positive, got {self.speed}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fitted. Model selection (early stopping, best epoch) uses the validation
    speakers only; the test speakers are never seen before the final evaluation.

    Device options (each leaves training on a CPU as it always was):

    * ``amp`` / ``amp_dtype``: mixed precision on CUDA only (CPU training stays float32).
      ``"auto"`` measures float16 against bfloat16 once per device and process
      (:mod:`avemo.training.precision`): float16 (with a gradient scaler) where it is faster,
      else bfloat16 where the GPU supports it.
    * ``eval_batch_size``: batch of validation and prediction; unset, 128 on a CPU and, on a GPU,
      the largest batch up to 128 whose measured peak stays under ``eval_memory_gib`` and under
      the free memory (:mod:`avemo.training.memory`); a batch that still runs out of memory is
      split in halves.
    * ``accumulate``: every batch of ``batch_size`` is run as ``accumulate`` micro-batches with
      one optimizer step: the same effective batch in about 1/``accumulate`` of the activation
      memory (the same gradients for models without batch statistics; BatchNorm sees the
      micro-batches).
    * ``checkpoint_activations``: recompute the activations of the 3D ResNeXt blocks in the
      backward pass instead of storing them (less memory, about a third more compute).
    * ``loader_workers``: DataLoader worker processes; unset, 0 on a CPU and up to 4 on CUDA
      (with pinned memory).
    * ``channels_last`` / ``cudnn_benchmark``: on CUDA, 3D convolutions in the
      ``channels_last_3d`` memory format and cuDNN's algorithm search.
    * ``class_balance``: ``"sampler"`` draws every class equally often; ``"loss"`` weights the
      cross-entropy by inverse class frequency of the training set (models with the default loss).
    * ``compile``: ``torch.compile`` the training step (its first-step time is reported as
      ``compile_seconds``).

    ``balance``: sample weights in the loss (:mod:`avemo.training.corpora`): ``"corpus"`` gives
    every corpus the same total weight, ``"corpus_class"`` every (corpus, label) cell, ``"none"``
    none; ``"auto"`` is ``"corpus"`` with several corpora and ``"none"`` with one (a checkpoint
    records the weighting used, not ``"auto"``).
    """

    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["cosine", "none"] = "cosine"
    patience: int = 15
    monitor: Literal["val_accuracy", "val_uar", "val_weighted_f1", "val_loss"] = "val_accuracy"
    seed: int = 0
    class_balance: Literal["none", "sampler", "loss"] = "none"
    balance: Literal["auto", "none", "corpus", "corpus_class"] = "auto"
    grad_clip: float = 5.0
    speaker_norm: bool = False
    device: str = "auto"
    amp: bool = True
    amp_dtype: Literal["auto", "float16", "bfloat16"] = "auto"
    eval_batch_size: int | None = None
    eval_memory_gib: float = 16.0
    accumulate: int = 1
    checkpoint_activations: bool = False
    loader_workers: int | None = None
    channels_last: bool = True
    cudnn_benchmark: bool = True
    compile: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.accumulate < 1 or self.accumulate > self.batch_size:
            raise ConfigError(f"accumulate must be between 1 and batch_size ({self.batch_size}), got {self.accumulate}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size must be at least 1 (or unset: automatic), got {self.eval_batch_size}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ConfigError(f"loader_workers must be >= 0 (or unset: automatic), got {self.loader_workers}")
        if self.eval_memory_gib <= 0:
            raise ConfigError(f"eval_memory_gib must be positive, got {self.eval_memory_gib}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.patience < 1:
            raise ConfigError(f"patience must be at least 1, got {self.patience}")
