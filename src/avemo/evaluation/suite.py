"""Benchmark suites as data: ``avemo/evaluation/suites/NAME.toml`` (or any TOML file of that shape).

A :class:`Suite` says everything a benchmark runs, so that the command line
(``avemo benchmark NAME``) and the benchmark scripts (``benchmarks/ravdess_au.py``) build the same
runs from it instead of each rebuilding them:

* the dataset, its label protocol (``protocol``: ``iemocap4`` / ``iemocap6`` for IEMOCAP), its
  fold plan (a built-in plan name), notes on some folds (``fold_notes``: which fold is a paper's
  split), the tables its models read, and what gives each modality (``modalities``: e.g. video
  needs ``--media DIR``), which :meth:`Suite.missing_modalities` checks before any training;
* the base :class:`~avemo.training.config.TrainConfig` and per-model training overrides;
* the entries (registered models with their configs, training overrides and seeds), in blocks of
  models that share them, and variants of entries (e.g. speaker-normalised copies); blocks and
  variants marked ``extended`` run only when asked for;
* the report's groups of models, named model sets, the candidates of the suite's hyper-parameter
  exploration, what the papers report for its models, and notes for the report.

See ``suites/ravdess_au.toml`` and ``suites/iemocap.toml`` for complete examples; :func:`load_suite` checks every key and
value (a one-line :class:`~avemo.errors.ConfigError` naming the file otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from avemo import config as cfg
from avemo.datasets.folds import FoldPlan, Split, builtin_plan
from avemo.datasets.readers import label_protocols
from avemo.errors import ConfigError
from avemo.evaluation.benchmark import BenchmarkEntry, plan_splits, random_splits
from avemo.training.config import TrainConfig
from avemo.training.experiment import DataBundle

PROTOCOLS = ("speaker", "random")


@dataclasses.dataclass(frozen=True)
class EntryBlock:
    """Entries of several models that share everything else. ``name`` and ``group`` may use
    ``{model}`` and ``{group}`` (the model's group in :attr:`Suite.groups`)."""

    models: tuple[str, ...]
    name: str = "{model}"
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    group: str = "{group}"
    note: str = ""
    extended: bool = False


@dataclasses.dataclass(frozen=True)
class Variant:
    """A copy of each entry named in ``of`` with more training overrides (and model config);
    ``name`` and ``group`` may use ``{name}`` and ``{group}`` (the original entry's)."""

    of: tuple[str, ...]
    name: str
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    group: str = "{group}"
    note: str = ""
    extended: bool = False


@dataclasses.dataclass(frozen=True)
class ExploreCandidate:
    """One candidate of a suite's hyper-parameter exploration and the question it answers."""

    name: str
    question: str
    model: str
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    def entry(self) -> BenchmarkEntry:
        return BenchmarkEntry(self.name, self.model, dict(self.model_config), dict(self.train), self.seeds,
                              group=self.question)


@dataclasses.dataclass(frozen=True)
class Suite:
    """A benchmark suite (see the module docstring); built by :func:`load_suite`."""

    name: str
    title: str
    dataset: str
    plan: str
    protocol: str | None = None  # the dataset's label protocol (IEMOCAP: iemocap4, iemocap6)
    tables: tuple[str, ...] = ()
    modalities: dict[str, str] = dataclasses.field(default_factory=dict)  # modality -> what gives it
    fold_notes: dict[str, str] = dataclasses.field(default_factory=dict)  # fold number -> note
    notes: tuple[str, ...] = ()
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    sets: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    papers: dict[str, str] = dataclasses.field(default_factory=dict)
    entries: tuple[EntryBlock, ...] = ()
    variants: tuple[Variant, ...] = ()
    explore: tuple[ExploreCandidate, ...] = ()

    def __post_init__(self) -> None:
        for field in ("groups", "sets"):
            object.__setattr__(self, field, {k: tuple(v) for k, v in getattr(self, field).items()})

    # -- what runs ---------------------------------------------------------------------------------
    def group_of(self, model: str) -> str:
        """The group of ``model``'s entries in :attr:`groups` (empty when it has none)."""
        return next((label for label, models in self.groups.items() if model in models), "")

    def model_set(self, name: str) -> tuple[str, ...]:
        """A named list of models of :attr:`sets` (or of :attr:`groups`)."""
        if name in self.sets:
            return self.sets[name]
        if name in self.groups:
            return self.groups[name]
        raise ConfigError(f"suite {self.name} has no model set {name!r}; sets: {', '.join(sorted(self.sets))}; "
                          f"groups: {', '.join(sorted(self.groups))}")

    def benchmark_entries(self, models: Sequence[str] | None = None, *, extended: bool = False) -> list[BenchmarkEntry]:
        """The entries of the suite, in file order (blocks, then variants); ``extended``: also the
        blocks and variants marked so; ``models``: keep only these entry names (each must exist)."""
        out: list[BenchmarkEntry] = []
        for block in self.entries:
            if block.extended and not extended:
                continue
            for model in block.models:
                fill = {"model": model, "group": self.group_of(model)}
                out.append(BenchmarkEntry(
                    block.name.format(**fill), model, dict(block.model_config),
                    {**self.train_overrides.get(model, {}), **block.train}, block.seeds,
                    group=block.group.format(**fill), note=block.note))
        by_name = {e.name: e for e in out}
        for variant in self.variants:
            if variant.extended and not extended:
                continue
            for name in variant.of:
                if name in by_name:
                    e = by_name[name]
                    fill = {"name": e.name, "group": e.group}
                    out.append(BenchmarkEntry(
                        variant.name.format(**fill), e.model, {**e.model_config, **variant.model_config},
                        {**e.train, **variant.train}, e.seeds, group=variant.group.format(**fill),
                        note=variant.note))
        if models is not None:
            known = {e.name for e in out}
            unknown = sorted(set(models) - known)
            if unknown:
                raise ConfigError(f"models {', '.join(unknown)} are not in the {self.name} suite; it has {', '.join(sorted(known))}")
            out = [e for e in out if e.name in models]
        return out

    def explore_entries(self) -> list[BenchmarkEntry]:
        """The exploration candidates as benchmark entries (their question as the group)."""
        return [c.entry() for c in self.explore]

    # -- how it runs -------------------------------------------------------------------------------
    def train_config(self, overrides: Mapping[str, Any] | None = None, *, where: str = "train config") -> TrainConfig:
        """The suite's base training configuration, with ``overrides`` (e.g. a config file, --epochs) on top."""
        return cfg.from_dict(TrainConfig, {**self.train, **dict(overrides or {})}, where=where)

    def fold_plan(self) -> FoldPlan:
        return builtin_plan(self.plan)

    def splits(self, data: DataBundle, protocol: str = "speaker", *, seed: int = 0) -> list[Split]:
        """The splits of ``data``: the folds of the suite's plan (``"speaker"``), or as many random
        splits of the takes, speakers on both sides, for comparison only (``"random"``)."""
        if protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
        plan = self.fold_plan()
        if protocol == "speaker":
            return plan_splits(data, plan.folds)
        return random_splits(data, k=len(plan.folds), seed=seed)

    def load_data(self, root: str | Path, *, visual_table: str | Path | None = None, protocol: str | None = None,
                  media: str | Path | None = None) -> DataBundle:
        """The suite's dataset from ``root`` with the tables it needs (one-line error when one is missing);
        ``protocol``: a label protocol of the dataset instead of the suite's; ``media``: IEMOCAP's
        prepared utterance videos (``avemo prepare --dataset iemocap``)."""
        from avemo.training.experiment import load_data

        if self.tables and visual_table is None:
            raise ConfigError(f"the {self.name} suite needs --visual-table ({', '.join(self.tables)})")
        protocol = protocol or self.protocol
        if protocol is not None and protocol not in label_protocols(self.dataset):
            raise ConfigError(f"label protocol {protocol!r} is not one of {self.dataset}'s: "
                              f"{', '.join(label_protocols(self.dataset)) or 'it has none'}")
        data = load_data(self.dataset, root, visual_table=visual_table, protocol=protocol, media=media)
        missing = sorted(set(self.tables) - set(data.tables))
        if missing:
            raise ConfigError(f"the {self.name} suite needs the table(s) {', '.join(missing)}; given: {', '.join(sorted(data.tables)) or 'none'}")
        return data


    def missing_modalities(self, entries: Sequence[BenchmarkEntry], data: DataBundle) -> str | None:
        """One line saying which entries need a modality that no take of ``data`` has (with what
        gives it, from :attr:`modalities`, and the entries that can run), or None when all can run."""
        from avemo.models import default_inputs

        needs = {e.name: {s.modality for s in default_inputs(e.model, **e.model_config).values()
                          if s.feature not in data.tables} for e in entries}
        lacking = [m for m in dict.fromkeys(m for ms in needs.values() for m in sorted(ms))
                   if not any(m in t for t in data.takes)]
        if not lacking:
            return None
        parts = []
        for m in lacking:
            who = [name for name, ms in needs.items() if m in ms]
            hint = self.modalities.get(m)
            parts.append(f"{', '.join(who)} need {m}, which no take of the data has"
                         + (f" ({m} needs {hint})" if hint else ""))
        can = [name for name, ms in needs.items() if not ms & set(lacking)]
        rest = f"; or leave them out: --models {','.join(can)}" if can else ""
        return f"the {self.name} suite's models " + "; ".join(parts) + rest

    def notes_for(self, folds: Sequence[int]) -> list[str]:
        """The notes of the given folds (``Fold 5: paper 002's split ...``)."""
        return [f"Fold {n}: {self.fold_notes[str(n)]}" for n in folds if str(n) in self.fold_notes]


def list_suites() -> list[str]:
    """Names of the suites shipped in ``avemo/evaluation/suites/``."""
    folder = resources.files("avemo.evaluation") / "suites"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name (``"ravdess_au"``) or a suite TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        return _read_suite(path)
    name = str(name_or_path)
    if name not in list_suites():
        raise ConfigError(f"unknown benchmark suite {name!r}; available: {', '.join(list_suites())}")
    with resources.as_file(resources.files("avemo.evaluation") / "suites" / f"{name}.toml") as built_in:
        return _read_suite(built_in)


def _read_suite(path: Path) -> Suite:
    try:
        suite = cfg.from_dict(Suite, cfg.load_file(path), where="suite")
    except ConfigError as exc:
        raise ConfigError(exc.reason, path) from None
    try:
        suite.train_config(where="suite.train")
        for model in suite.train_overrides:
            suite.train_config(suite.train_overrides[model], where=f"suite.train_overrides.{model}")
        suite.benchmark_entries(extended=True)  # placeholders and names resolve
        _check_data_options(suite)
    except (ConfigError, KeyError) as exc:
        reason = exc.reason if isinstance(exc, ConfigError) else f"unknown placeholder {exc} in a name or group"
        raise ConfigError(reason, path) from None
    return suite


def _check_data_options(suite: Suite) -> None:
    """The label protocol, the modalities and the fold notes of a suite name things that exist."""
    from avemo.modality import MODALITIES

    if suite.protocol is not None and suite.protocol not in label_protocols(suite.dataset):
        known = ", ".join(label_protocols(suite.dataset)) or "it has none"
        raise ConfigError(f"protocol {suite.protocol!r} is not a label protocol of {suite.dataset} ({known})")
    unknown = sorted(set(suite.modalities) - set(MODALITIES))
    if unknown:
        raise ConfigError(f"modalities: unknown {', '.join(map(str, unknown))}; known: {', '.join(MODALITIES)}")
    folds = {str(f.number) for f in suite.fold_plan().folds}
    bad = sorted(set(suite.fold_notes) - folds)
    if bad:
        raise ConfigError(f"fold_notes: folds {bad} are not in the plan {suite.plan} ({', '.join(sorted(folds))})")
