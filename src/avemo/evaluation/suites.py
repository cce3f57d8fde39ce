"""Named benchmark suites: which models run, on which protocol, next to which published numbers.

``ravdess_au`` (the real benchmark of ``../shared/GUIDE.md``): RAVDESS speech audio of the 20
shared speakers through our own audio front-ends, plus the 35 OpenFace AU means of the
matching audio-visual take as the video input, 5 speaker-disjoint folds (the built-in
``ravdess_au`` plan). Every fusion method of the zoo runs with its paper's audio encoder and
the ``au_mlp`` vector encoder in place of its frame encoder; the recommended recipe
(``default``: :mod:`avemo.models.fusion.late_calibrated`) runs as a seed ensemble.

:func:`ravdess_au_entries` with ``extended=True`` (what ``benchmarks/ravdess_au.py`` runs) adds:
paper 000's Table 1 fusion methods with the Whisper audio encoder (``NAME_whisper``: the same
comparison with a strong audio branch), and speaker-normalised variants (``NAME_spknorm``) of
the unimodal and recommended models.

The training settings (:data:`RAVDESS_AU_TRAIN` and the per-model :data:`TRAIN_OVERRIDES`) were
chosen on the inner validation scores of ``benchmarks/ravdess_au.py --part explore``, never on
test speakers.
"""

from __future__ import annotations

from typing import Any

from avemo.evaluation.benchmark import BenchmarkEntry

#: model-level ("intermediate") fusion in paper 000's Table 1 terms
MODEL_LEVEL = ("mmtm", "msaf", "cfn_sr", "cfnsr_lstm")
EARLY = ("concat_fc", "mcbp")
LATE = ("late_average", "late_multiplicative", "late_product", "late_calibrated")
#: the fusion methods of paper 000's Table 1 (whose audio encoder can be swapped)
TABLE_1 = ("late_average", "late_multiplicative", "late_product", "concat_fc", "mcbp", "mmtm", "msaf", "cfn_sr",
           "cfnsr_lstm")

#: seeds of the recommended model's ensemble (probabilities averaged)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)

#: the base training configuration of the suite (a ``TrainConfig`` as a dict; see :mod:`avemo.training.config`)
RAVDESS_AU_TRAIN: dict[str, Any] = {"epochs": 60, "patience": 15, "lr": 1e-3, "weight_decay": 1e-4}

#: recurrent models on long sequences: 20-120 s per epoch on the shared 2-core CPU (measured,
#: ``benchmarks/ravdess_au.py``), i.e. 3-10 h each for 60 epochs x 5 folds; they get a smaller budget
#: (even so, the 5 folds took 18 min for ``cai_ser1`` and 16 min for ``cai_mer1`` there, and
#: ``cai_ser2`` / ``cai_mer2`` / the Bi-LSTM models of paper 002 take 2-4 times as long)
SLOW_MODELS = ("gao_bilstm_attention", "gao_mha_residual", "cai_ser1", "cai_ser2", "cai_mer1", "cai_mer2")

#: per-model training overrides (on top of :data:`RAVDESS_AU_TRAIN`)
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {name: {"epochs": 15, "patience": 5} for name in SLOW_MODELS}

#: what each paper reports for the model, with its own (different) protocol and data
PAPER_NUMBERS = {
    "mfcc_cnn1d": "56.53 (000 Tab. 1, RAVDESS audio)",
    "late_average": "68.82 (000 Tab. 1, RAVDESS A+V frames)",
    "late_multiplicative": "70.35 (000 Tab. 1)",
    "late_product": "70.56 (000 Tab. 1)",
    "concat_fc": "71.04 (000 Tab. 1)",
    "mcbp": "71.32 (000 Tab. 1)",
    "mmtm": "73.12 (000 Tab. 1)",
    "msaf": "74.86 (000 Tab. 1)",
    "cfn_sr": "75.76 (000 Tab. 1)",
    "cfnsr_lstm": "76.25 (000 Tab. 1)",
    "sultana_concat_dense": "66.9 (001, RAVDESS A+V frames)",
    "gao_mha_residual": "61.7 (002, IEMOCAP, not RAVDESS)",
    "cai_mer1": "IEMOCAP only (003)",
    "cai_mer2": "70.24 (003, IEMOCAP, not RAVDESS)",
    "mfa_fercnn": "95.07 (004, RAVDESS, random split)",
}

#: models whose speaker-normalised variant the extended suite adds
SPEAKER_NORM_VARIANTS = ("whisper_mlp", "egemaps_mlp", "mfcc_cnn1d", "au_mlp", "late_calibrated", "default")


def fusion_group(name: str) -> str:
    """Paper 000's fusion stage of a model: model-level, early, late, or paper-specific."""
    if name in MODEL_LEVEL:
        return "model-level fusion"
    if name in EARLY:
        return "early fusion"
    if name in LATE:
        return "late fusion"
    return "fusion (paper-specific)"


def _train(name: str, **extra: Any) -> dict[str, Any]:
    return {**TRAIN_OVERRIDES.get(name, {}), **extra}


def ravdess_au_entries(models: list[str] | None = None, *, extended: bool = False) -> list[BenchmarkEntry]:
    """Every zoo model that fits audio + a per-clip video vector, as benchmark entries.

    ``extended``: also the Whisper-audio variants of paper 000's Table 1 fusion methods and the
    speaker-normalised variants (see the module docstring). ``models``: keep only these names.
    """
    from avemo.errors import ConfigError
    from avemo.models import default_inputs, list_aliases, list_models

    entries: list[BenchmarkEntry] = []
    for name in list_models("audio"):
        entries.append(BenchmarkEntry(name, name, train=_train(name), group="audio only"))
    entries.append(BenchmarkEntry("au_mlp", "au_mlp", train=_train("au_mlp"), group="visual only (AU)"))
    for name in list_models("fusion"):
        specs = default_inputs(name)
        if any(s.modality == "video" and s.kind == "frames" for s in specs.values()) or "video" in specs:
            config = {"video": "au_mlp"}
        else:
            config = {}
        entries.append(BenchmarkEntry(name, name, model_config=config, train=_train(name), group=fusion_group(name)))
    if "default" in list_aliases():
        entries.append(BenchmarkEntry("default", "default", train=_train("default"), seeds=DEFAULT_SEEDS,
                                      group="recommended",
                                      note=f"{list_aliases()['default']}, ensemble of {len(DEFAULT_SEEDS)} seeds"))
    if extended:
        for name in TABLE_1:
            entries.append(BenchmarkEntry(
                f"{name}_whisper", name, model_config={"audio": "whisper_mlp", "video": "au_mlp"},
                train=_train(name), group=f"{fusion_group(name)} (Whisper audio)",
                note="paper 000's fusion method with the whisper_mlp audio encoder"))
        by_name = {e.name: e for e in entries}
        for name in SPEAKER_NORM_VARIANTS:
            if name in by_name:
                e = by_name[name]
                entries.append(BenchmarkEntry(
                    f"{name}_spknorm", e.model, model_config=e.model_config, train={**e.train, "speaker_norm": True},
                    seeds=e.seeds, group=f"{e.group} + speaker norm",
                    note="speaker-level feature normalisation (needs several clips of the test speaker)"))
    if models is not None:
        known = {e.name for e in entries}
        unknown = sorted(set(models) - known)
        if unknown:
            raise ConfigError(f"models {unknown} are not in the ravdess_au suite; it has {sorted(known)}")
        entries = [e for e in entries if e.name in models]
    return entries
