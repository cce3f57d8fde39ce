"""Training on several corpora at once: one label space, qualified speakers, balance weights.

A run may read several labelled corpora (``avemo train`` with repeated ``--dataset/--root`` pairs,
or ``--corpora FILE.toml``)::

    [[corpora]]
    dataset = "ravdess"
    root = "data/ravdess/speech_audio"

    [[corpora]]
    dataset = "emodb"
    root = "data/emodb_dev/wav"
    speakers = ["03", "08"]   # optional: a subset
    weight = 2.0              # optional: multiplies this corpus's sample weights
    name = "emodb"            # optional: the corpus name (default: the dataset name)

    [[corpora]]
    dataset = "folder"
    root = "data/mine"        # labels.csv, or one folder per emotion (avemo.datasets.emotion_folders)
    speaker_pattern = '^(\\d\\d)'   # optional, folder only: the speaker in the file name, for <emotion>/FILE

    [[corpora]]
    dataset = "iemocap"
    root = "data/IEMOCAP_full_release"
    protocol = "iemocap6"     # optional, iemocap only: its label protocol (default iemocap4)
    media = "data/iemocap_media"   # optional, iemocap only: `avemo prepare --dataset iemocap` output

Beside ``[[corpora]]`` the file may set the run's ``label_space`` and ``balance`` at its top level
(:data:`FILE_SETTINGS`, read by :func:`corpora_file_settings`; ``avemo train``'s ``--label-space``
and ``--balance`` win over them). :func:`read_corpora_file` refuses any other top-level key unless
its caller says it reads that key itself (``reads=``: the build recipe of the bundled model shares
the format and reads its own sections), so that no setting in the file is silently ignored.

Every speaker is qualified by its corpus (``emodb:03``, ``ravdess:01``), so ids never collide;
fold plans and validation speakers use these ids (an unqualified id is accepted when one corpus
alone has it).

**Label space** (:class:`LabelSpace`), written into the run's checkpoint with every per-corpus map:

* ``shared`` (default): the labels every corpus can express, after the documented merges of
  :data:`avemo.datasets.labels.COMPARISON_MERGES` (RAVDESS calm counts as neutral when another
  corpus has no calm). Clips whose label has no partner (RAVDESS surprised, EmoDB boredom) are left
  out of training and counted. RAVDESS + EmoDB: neutral, happy, sad, angry, fearful, disgust.
* ``union_masked``: the union of all labels; each clip's softmax runs only over the labels its
  corpus can express (the logits of the others are set to -inf for that clip), so a corpus is never
  taught that a class it cannot express is wrong.

**Balance** (:func:`balance_weights`), sample weights in the loss (and in ``whisper_logreg``'s
L-BFGS objective), scaled to mean 1 over the training clips: ``none``; ``corpus`` (every corpus has
the same total weight); ``corpus_class`` (every (corpus, label) cell has the same total weight);
``auto`` = ``corpus`` with several corpora, ``none`` with one. A corpus's ``weight`` multiplies its
clips' weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from avemo.config import load_file
from avemo.datasets.labels import COMPARISON_MERGES, LabelSet, label_set_for
from avemo.datasets.pairing import Take
from avemo.datasets.readers import label_protocols
from avemo.errors import ConfigError
from avemo.models.checkpoint import recorded_file, recorded_path

SpaceMode = Literal["shared", "union_masked"]
Balance = Literal["auto", "none", "corpus", "corpus_class"]
SPACE_MODES = ("shared", "union_masked")
BALANCES = ("auto", "none", "corpus", "corpus_class")
QUALIFIER = ":"


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus of a run: reader ``dataset``, folder ``root``, optional ``speakers`` subset (the
    corpus's own ids), ``weight`` (multiplies its sample weights), ``name`` (default: the dataset),
    ``labels`` (the labels CSV of a ``folder`` corpus), ``speaker_pattern`` (the speakers of a ``folder``
    corpus of emotion folders, one regex group over the file name), ``protocol`` (the label protocol of an
    ``iemocap`` corpus: iemocap4, iemocap6), ``media`` (its prepared utterance videos) and
    ``transcribe`` (give its takes without a transcript one by speech recognition:
    :mod:`avemo.training.transcripts`)."""

    dataset: str
    root: Path
    speakers: tuple[str, ...] | None = None
    weight: float = 1.0
    name: str | None = None
    labels: Path | None = None
    speaker_pattern: str | None = None
    protocol: str | None = None
    media: Path | None = None
    transcribe: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.transcribe, bool):
            raise ConfigError(f"corpus {self.corpus}: transcribe must be true or false, got {self.transcribe!r}")
        if not self.weight > 0:
            raise ConfigError(f"corpus {self.corpus}: weight must be positive, got {self.weight}")
        known = label_protocols(self.dataset)
        if self.protocol is not None and self.protocol not in known:
            raise ConfigError(f"corpus {self.corpus}: protocol {self.protocol!r} is not a label protocol of "
                              f"{self.dataset} ({', '.join(known) or 'it has none'})")
        if self.media is not None and self.dataset != "iemocap":
            raise ConfigError(f"corpus {self.corpus}: media (prepared utterance videos) is for iemocap corpora, "
                              f"not {self.dataset}")
        if self.labels is not None and self.dataset != "folder":
            raise ConfigError(f"corpus {self.corpus}: labels (a labels CSV) is for folder corpora; {self.dataset} "
                              "reads its labels from its own files")
        if self.speaker_pattern is not None and self.dataset != "folder":
            raise ConfigError(f"corpus {self.corpus}: speaker_pattern is for folder corpora; {self.dataset} reads "
                              "its speakers from its own files")
        if QUALIFIER in self.corpus:
            raise ConfigError(f"corpus name {self.corpus!r} must not contain {QUALIFIER!r}")

    @property
    def corpus(self) -> str:
        return self.name or self.dataset


def recorded_reading(root: str | Path, labels: str | Path | None, speaker_pattern: str | None) -> dict[str, str]:
    """How a checkpoint records the way a folder corpus at ``root`` was read (see
    :mod:`avemo.models.checkpoint`): ``labels_csv``, a labels CSV other than ``root/labels.csv``
    (:func:`~avemo.models.checkpoint.recorded_file`), and ``speaker_pattern``, each only when given."""
    from avemo.datasets.folder import DEFAULT_LABELS_FILE

    csv = Path(labels).expanduser() if labels is not None else None
    own = csv is not None and os.path.abspath(csv) != os.path.abspath(Path(root) / DEFAULT_LABELS_FILE)
    return {**({"labels_csv": recorded_file(csv, root)} if own else {}),
            **({"speaker_pattern": speaker_pattern} if speaker_pattern is not None else {})}


#: the keys of a corpora file entry that a corpus only scored reads (``avemo benchmark --test-corpus FILE``):
#: how its folder is read, not how it is trained on (speakers=, weight=, transcribe=)
TEST_CORPUS_KEYS = ("dataset", "root", "name", "labels", "speaker_pattern", "protocol", "media")


#: the top-level keys of a corpora file beside ``[[corpora]]`` that ``avemo train`` reads, with their values
FILE_SETTINGS: dict[str, tuple[str, ...]] = {"label_space": SPACE_MODES, "balance": BALANCES}


def _load_corpora_file(path: Path, reads: Collection[str]) -> dict:
    """The file as a mapping whose top-level keys are ``corpora`` and those of ``reads``, else a one-line
    :class:`ConfigError` naming the file, the keys nobody reads and the keys accepted."""
    data = load_file(path)
    if not isinstance(data, Mapping):
        raise ConfigError("not a table of [[corpora]] entries", path)
    accepted = {"corpora", *reads}
    unknown = sorted(set(data) - accepted)
    if unknown:
        raise ConfigError(f"unknown top-level key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: nothing "
                          f"reads {'them' if len(unknown) > 1 else 'it'} (accepted: {', '.join(sorted(accepted))})",
                          path)
    return dict(data)


def corpora_file_settings(path: str | Path) -> dict[str, str]:
    """The run settings a corpora file gives at its top level (:data:`FILE_SETTINGS`: ``label_space``,
    ``balance``), only those it gives; an unknown value, or a top-level key that neither the settings
    nor ``[[corpora]]`` is, is refused in one line naming the file."""
    path = Path(path)
    data = _load_corpora_file(path, FILE_SETTINGS)
    settings = {}
    for key, values in FILE_SETTINGS.items():
        if key in data:
            if data[key] not in values:
                raise ConfigError(f"{key} = {data[key]!r} is not one of {', '.join(values)}", path)
            settings[key] = data[key]
    return settings


def read_corpora_file(path: str | Path, *, reads: Collection[str] = (),
                      keys: Collection[str] | None = None) -> list[CorpusSpec]:
    """The ``[[corpora]]`` entries of a TOML/YAML/JSON file (roots relative to the file's folder).

    ``reads``: the other top-level keys the caller reads from the file itself (``avemo train``:
    :data:`FILE_SETTINGS`); any other top-level key is refused in one line naming the file and the
    key, with the keys accepted, rather than ignored. ``keys``: the entry keys the caller uses (default:
    every :class:`CorpusSpec` field; ``avemo benchmark --test-corpus``: :data:`TEST_CORPUS_KEYS`), any
    other refused the same way."""
    path = Path(path)
    entries = _load_corpora_file(path, reads).get("corpora")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("no [[corpora]] entries (each with dataset= and root=)", path)
    known = set(keys) if keys is not None else {f.name for f in dataclasses.fields(CorpusSpec)}
    specs = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"corpora entry {i} needs dataset= and root=", path)
        corpus = entry.get("name") or entry.get("dataset")
        where = f"corpora entry {i}" + (f" ({corpus})" if corpus is not None else "")
        unknown, missing = sorted(set(entry) - known), [f"{k}=" for k in ("dataset", "root") if k not in entry]
        if unknown or missing:  # a misspelt dataset= was said only as "needs dataset= and root="
            said = ([f"unknown keys {', '.join(map(str, unknown))} (known: {', '.join(sorted(known))})"] if unknown else []) + (
                [f"needs {' and '.join(missing)}"] if missing else [])
            raise ConfigError(f"{where}: {'; '.join(said)}", path)
        _check_entry_types(entry, where, path)
        speakers = entry.get("speakers")
        labels, media = entry.get("labels"), entry.get("media")
        try:
            specs.append(CorpusSpec(
                dataset=entry["dataset"], root=path.parent / str(entry["root"]),
                speakers=tuple(str(s) for s in speakers) if speakers is not None else None,
                weight=float(entry.get("weight", 1.0)), name=entry.get("name"),
                labels=path.parent / str(labels) if labels is not None else None,
                speaker_pattern=entry.get("speaker_pattern"),
                protocol=str(entry["protocol"]) if "protocol" in entry else None,
                media=path.parent / str(media) if media is not None else None,
                transcribe=entry.get("transcribe", False),
            ))
        except ConfigError as exc:
            raise ConfigError(exc.reason, path) from None
    return specs


def check_corpora_paths(specs: Sequence[CorpusSpec], path: str | Path) -> None:
    """Before any corpus is read: a ``root=``, ``labels=`` or ``media=`` of the corpora file ``path`` that
    is not there, in one line naming the file, the entry and the rule (a relative path is read against
    the file's folder, not the current one; it said only "c/aud: folder folder does not exist")."""
    path = Path(path)
    for spec in specs:
        for key, place in (("root", spec.root), ("labels", spec.labels), ("media", spec.media)):
            if place is not None and not Path(place).exists():
                raise ConfigError(f"corpus {spec.corpus}: {key}= {place} does not exist (a relative path in the "
                                  f"file is read against its folder, {path.parent}, not the current folder)", path)


def _check_entry_types(entry: Mapping, where: str, path: Path) -> None:
    """A one-line :class:`ConfigError` naming the file, the entry and the key for a value of the wrong kind
    (``speakers = "03"`` was read as the speakers "0" and "3", ``weight = "x"`` and ``name = 5`` stopped
    with a traceback) or a dataset no reader reads."""
    from avemo.datasets.readers import list_datasets

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"{where}: {reason}", path)

    if entry["dataset"] not in list_datasets():
        raise refuse(f"unknown dataset {entry['dataset']!r}; known: {', '.join(list_datasets())}")
    for key in ("root", "name", "labels", "speaker_pattern", "protocol", "media"):
        if key in entry and not (isinstance(entry[key], str) and entry[key]):
            raise refuse(f"{key} must be a non-empty string, got {entry[key]!r}")
    speakers = entry.get("speakers")
    if speakers is not None and (not isinstance(speakers, list) or not speakers
                                 or not all(isinstance(s, str) and s for s in speakers)):
        raise refuse(f'speakers must be a non-empty list of speaker ids as strings (e.g. ["03", "08"]), '
                     f"got {speakers!r}")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise refuse(f"weight must be a number, got {weight!r}")


def check_corpus_names(specs: Sequence[CorpusSpec]) -> None:
    names = [s.corpus for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"corpora {', '.join(twice)} are given twice: give each a distinct name= in --corpora")


# ----------------------------------------------------------------------------- label space
@dataclass(frozen=True)
class LabelSpace:
    """The model's classes (``labels``) and how each corpus's labels map onto them.

    ``maps[corpus][emotion]``: the class a clip of that emotion trains as, or None (left out);
    ``allowed[corpus]``: the classes the corpus can express (its clips' softmax runs over these)."""

    mode: SpaceMode
    labels: LabelSet
    sources: Mapping[str, LabelSet]
    maps: Mapping[str, Mapping[str, str | None]]
    allowed: Mapping[str, tuple[str, ...]]
    notes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def masked(self) -> bool:
        """Whether some corpus cannot express every class (its clips need a masked softmax)."""
        return any(len(a) < len(self.labels) for a in self.allowed.values())

    def allowed_matrix(self, corpora: Sequence[str]) -> np.ndarray:
        """(len(corpora), n_classes) bool: row g marks the classes corpus ``corpora[g]`` can express."""
        out = np.zeros((len(corpora), len(self.labels)), dtype=bool)
        for g, c in enumerate(corpora):
            out[g, [self.labels.index(e) for e in self.allowed[c]]] = True
        return out

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "labels": list(self.labels.emotions),
            "corpora": {c: {"label_set": self.sources[c].to_dict(), "map": dict(self.maps[c]),
                            "allowed": list(self.allowed[c])} for c in self.maps},
            "notes": dict(self.notes),
        }


def _merged_names(own: LabelSet, others: Sequence[LabelSet]) -> tuple[dict[str, str], dict[str, str]]:
    """Each emotion of ``own`` -> its name in the shared space (merged when another set lacks it)."""
    names, notes = {}, {}
    for e in own:
        merge = COMPARISON_MERGES.get(e)
        if merge is not None and any(e not in o for o in others):
            names[e], notes[e] = merge
        else:
            names[e] = e
    return names, notes


def build_label_space(sources: Mapping[str, LabelSet], mode: SpaceMode = "shared") -> LabelSpace:
    """The label space of corpora ``sources`` (corpus name -> its label set); see the module doc.

    A shared space with fewer than two labels raises a one-line :class:`ConfigError` naming the
    sets and the labels that have no partner."""
    if mode not in SPACE_MODES:
        raise ConfigError(f"unknown label space {mode!r}; use one of {', '.join(SPACE_MODES)}")
    corpora = list(sources)
    if mode == "union_masked":
        labels = label_set_for("+".join(corpora), (e for s in sources.values() for e in s))
        maps = {c: {e: e for e in s} for c, s in sources.items()}
        return LabelSpace(mode, labels, dict(sources), maps, {c: tuple(s.emotions) for c, s in sources.items()})
    names, notes = {}, {}
    for c, s in sources.items():
        names[c], merged = _merged_names(s, [sources[o] for o in corpora if o != c])
        notes.update(merged)
    shared = set.intersection(*(set(n.values()) for n in names.values()))
    if len(shared) < 2:
        lone = "; ".join(f"{sources[c].name} {', '.join(e for e in sources[c] if names[c][e] not in shared) or 'none'}"
                         for c in corpora)
        sets = " and ".join(f"{sources[c].name} ({', '.join(sources[c].emotions)})" for c in corpora)
        raise ConfigError(f"label sets {sets} cannot meet: they share {', '.join(sorted(shared)) or 'none'}, at least 2 labels are "
                          f"needed; without a partner: {lone}")
    labels = label_set_for("+".join(corpora), shared)
    maps = {c: {e: (names[c][e] if names[c][e] in shared else None) for e in sources[c]} for c in corpora}
    for c in corpora:
        for e, t in maps[c].items():
            if t is None:
                notes.setdefault(e, f"{sources[c].name} {e!r} has no partner in every corpus: left out of training")
    return LabelSpace(mode, labels, dict(sources), maps, {c: tuple(labels.emotions) for c in corpora}, notes)


# ----------------------------------------------------------------------------- speakers
def qualify(corpus: str, speaker: str) -> str:
    return f"{corpus}{QUALIFIER}{speaker}"


def corpus_of(speaker: str) -> str:
    """The corpus of a qualified speaker id (``"emodb:03"`` -> ``"emodb"``)."""
    return speaker.split(QUALIFIER, 1)[0]


def qualify_speakers(given: Sequence[str], known: Sequence[str]) -> list[str]:
    """Qualified ids for ``given`` speaker ids: qualified ones are kept, an unqualified one is
    qualified when exactly one corpus has it; ambiguous or unknown ids raise a one-line ConfigError."""
    out = []
    for s in given:
        if s in known:
            out.append(s)
            continue
        if QUALIFIER in s:
            raise ConfigError(f"speaker {s!r} is not in the data (speakers: {', '.join(known)})")
        matches = [k for k in known if k.split(QUALIFIER, 1)[1] == s]
        if not matches:
            raise ConfigError(f"speaker {s!r} is in no corpus (speakers: {', '.join(known)})")
        if len(matches) > 1:
            raise ConfigError(f"speaker {s!r} is ambiguous: it is in corpora {[corpus_of(m) for m in matches]}; "
                              f"qualify it ({', '.join(matches)})")
        out.append(matches[0])
    return out


def corpora_plan(speakers: Sequence[str], corpora: Sequence[str], k: int = 5, *, name: str, dataset: str):
    """The default fold plan of a multi-corpus run: each corpus's qualified speakers cut into the same
    number of folds (:func:`~avemo.datasets.make_plan`, ``min(k, the smallest corpus's speakers)``) and
    fold i of every corpus joined (:func:`~avemo.datasets.merge_plans`), so that each fold tests some
    speakers of every corpus and trains on the others of every corpus, with one validation speaker
    per corpus (none from a corpus with too few speakers to spare one). One plan over the sorted ids
    would test a whole corpus in one fold, never trained on: a cross-corpus score, not a fold."""
    from avemo.datasets import make_plan, merge_plans

    groups = {c: [s for s in speakers if corpus_of(s) == c] for c in corpora}
    smallest = min(groups, key=lambda c: len(groups[c]))
    k = min(k, len(groups[smallest]))
    if k < 2:
        raise ConfigError(f"corpus {smallest} has {len(groups[smallest])} speaker(s): folds over several corpora "
                          "need at least 2 of each; give --plan FILE.json (qualified ids) or --val-speakers")
    plans = []
    for c, own in groups.items():
        largest_test = -(-len(own) // k)
        plans.append(make_plan(own, k, n_val=1 if len(own) - largest_test >= 2 else 0, name=c, dataset=dataset))
    return merge_plans(plans, name=name, dataset=dataset)


# ----------------------------------------------------------------------------- balance
def resolved_balance(balance: Balance, corpora: Sequence[str]) -> Balance:
    """The weighting ``balance`` stands for when the training clips come from ``corpora`` (one name
    per clip, or each name once): ``"auto"`` is ``"corpus"`` with several corpora and ``"none"`` with
    one; any other value is itself."""
    if balance != "auto":
        return balance
    return "corpus" if len(set(corpora)) > 1 else "none"


def balance_weights(corpora: Sequence[str], labels: np.ndarray, n_classes: int, balance: Balance = "auto",
                    corpus_weights: Mapping[str, float] | None = None) -> np.ndarray:
    """(G, C) weight of a training clip by (corpus index, class), scaled so that the clips'
    weights average 1 (see the module doc). ``corpora``: each clip's corpus; ``labels``: its class."""
    if balance not in BALANCES:
        raise ConfigError(f"unknown balance {balance!r}; use one of {', '.join(BALANCES)}")
    names = list(dict.fromkeys(corpora))
    balance = resolved_balance(balance, names)
    g = np.array([names.index(c) for c in corpora], dtype=np.int64)
    counts = np.zeros((len(names), n_classes))
    np.add.at(counts, (g, labels), 1.0)
    if balance == "none":
        table = np.ones_like(counts)
    elif balance == "corpus":
        table = np.repeat(1.0 / counts.sum(axis=1, keepdims=True), n_classes, axis=1)
    else:
        table = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    scale = np.array([(corpus_weights or {}).get(c, 1.0) for c in names])[:, None]
    table = table * scale
    return table * (len(corpora) / (table * counts).sum())


@dataclass
class CorpusObjective:
    """Per-(corpus, class) sample weights and the classes each corpus can express: the training loss
    of a multi-corpus run. Targets are (B, 2) long tensors ``[class, corpus index]``."""

    corpora: tuple[str, ...]
    weights: torch.Tensor  # (G, C) float
    allowed: torch.Tensor  # (G, C) bool

    def item_weights(self, targets: torch.Tensor) -> torch.Tensor:
        return self.weights.to(targets.device)[targets[:, 1], targets[:, 0]]

    def item_allowed(self, targets: torch.Tensor) -> torch.Tensor:
        return self.allowed.to(targets.device)[targets[:, 1]]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Weighted mean of each clip's cross-entropy under the softmax over its corpus's classes."""
        from avemo.models.closed_form import masked_logits

        masked = masked_logits(logits.float(), self.item_allowed(targets))
        ce = F.cross_entropy(masked, targets[:, 0], reduction="none")
        return (self.item_weights(targets).to(ce.dtype) * ce).mean()


def make_objective(takes: Sequence[Take], labels: np.ndarray, n_classes: int, balance: Balance = "auto",
                   space: LabelSpace | None = None, corpus_weights: Mapping[str, float] | None = None,
                   ) -> tuple[CorpusObjective, np.ndarray] | None:
    """The objective of the training ``takes`` (their ``dataset`` is the corpus name; ``space``: the
    label space of a multi-corpus run, None for one corpus) and each take's corpus index; None when
    every weight is 1 and no softmax is masked (plain cross-entropy)."""
    corpora = [t.dataset for t in takes]
    table = balance_weights(corpora, labels, n_classes, balance, corpus_weights)
    names = tuple(dict.fromkeys(corpora))
    allowed = space.allowed_matrix(names) if space is not None else np.ones((len(names), n_classes), dtype=bool)
    if np.allclose(table, 1.0) and allowed.all():
        return None
    groups = np.array([names.index(c) for c in corpora], dtype=np.int64)
    return CorpusObjective(names, torch.as_tensor(table, dtype=torch.float32), torch.as_tensor(allowed)), groups


# ----------------------------------------------------------------------------- loading
@dataclass
class Corpora:
    """The takes of several corpora, relabelled into one :class:`LabelSpace`, speakers qualified."""

    specs: list[CorpusSpec]
    space: LabelSpace
    takes: list[Take]
    left_out: dict[str, dict[str, int]]  # corpus -> emotion -> clips without a partner

    def to_dict(self) -> dict:
        return {
            "corpora": [{"name": s.corpus, "dataset": s.dataset, "root": recorded_path(s.root), "weight": s.weight,
                         "speakers": list(s.speakers) if s.speakers is not None else "all",
                         **recorded_reading(s.root, s.labels, s.speaker_pattern),
                         **({"protocol": s.protocol} if s.protocol is not None else {}),
                         **({"media": recorded_path(s.media)} if s.media is not None else {}),
                         **({"transcribe": True} if s.transcribe else {}),
                         "n": sum(t.dataset == s.corpus for t in self.takes)} for s in self.specs],
            "label_space": self.space.to_dict(),
            "left_out": self.left_out,
        }
