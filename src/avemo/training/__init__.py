"""Training: data assembly from model input specs (with transcripts by speech recognition for corpora
without them: :mod:`avemo.training.transcripts`), the fitting loop, checkpoints, experiments."""

from avemo.models.batching import TensorData, collate
from avemo.models.checkpoint import (
    Checkpoint,
    check_compatible,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from avemo.models.normalization import Normalizer
from avemo.training.config import AugmentConfig, TrainConfig
from avemo.training.data import Gathered, gather
from avemo.training.experiment import (
    DataBundle,
    RunResult,
    load_data,
    resolve_split,
    train_run,
)
from avemo.training.scoring import Evaluation, evaluate_checkpoint
from avemo.training.trainer import FitResult, fit, predict_proba

__all__ = [
    "AugmentConfig",
    "Checkpoint",
    "DataBundle",
    "Evaluation",
    "FitResult",
    "Gathered",
    "Normalizer",
    "RunResult",
    "TensorData",
    "TrainConfig",
    "check_compatible",
    "collate",
    "evaluate_checkpoint",
    "fit",
    "gather",
    "load_checkpoint",
    "load_data",
    "predict_proba",
    "read_meta",
    "resolve_split",
    "save_checkpoint",
    "train_run",
]
