"""Named benchmark suites: which models run, on which protocol, next to which published numbers.

``ravdess-au`` (the real benchmark of ``../shared/GUIDE.md``): RAVDESS speech audio of the 20
shared speakers through our own audio front-ends, plus the 35 OpenFace AU means of the
matching audio-visual take as the visual input, 5 speaker-disjoint folds (the built-in
``ravdess_au`` plan). Every fusion method of the zoo runs with its paper's audio encoder and
the ``au_mlp`` vector encoder in place of its frame encoder.
"""

from __future__ import annotations

from avemo.evaluation.benchmark import BenchmarkEntry

#: model-level ("intermediate") fusion in paper 000's Table 1 terms
MODEL_LEVEL = ("mmtm", "msaf", "cfn_sr", "cfnsr_lstm")
EARLY = ("concat_fc", "mcbp")
LATE = ("late_average", "late_multiplicative", "late_product")

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


def _group(name: str) -> str:
    if name in MODEL_LEVEL:
        return "model-level fusion"
    if name in EARLY:
        return "early fusion"
    if name in LATE:
        return "late fusion"
    return "fusion (paper-specific)"


def ravdess_au_entries(models: list[str] | None = None) -> list[BenchmarkEntry]:
    """Every zoo model that fits audio + a per-clip visual vector, as benchmark entries."""
    from avemo.models import default_inputs, list_aliases, list_models

    entries: list[BenchmarkEntry] = []
    for name in list_models("audio"):
        entries.append(BenchmarkEntry(name, name, group="audio only"))
    entries.append(BenchmarkEntry("au_mlp", "au_mlp", group="visual only (AU)"))
    for name in list_models("fusion"):
        specs = default_inputs(name)
        if any(s.modality == "visual" and s.kind == "frames" for s in specs.values()) or "visual" in specs:
            config = {"visual": "au_mlp"}
        else:
            config = {}
        entries.append(BenchmarkEntry(name, name, model_config=config, group=_group(name)))
    if "default" in list_aliases():
        entries.append(BenchmarkEntry("default", "default", group="recommended"))
    if models is not None:
        known = {e.name for e in entries}
        unknown = sorted(set(models) - known)
        if unknown:
            from avemo.errors import ConfigError

            raise ConfigError(f"models {unknown} are not in the ravdess-au suite; it has {sorted(known)}")
        entries = [e for e in entries if e.name in models]
    return entries
