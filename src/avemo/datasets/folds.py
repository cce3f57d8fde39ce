"""Speaker-disjoint fold plans, written to and read from JSON, and the leakage check.

A :class:`FoldPlan` says, for each fold, which speakers are tested, which are used for
validation (early stopping, hyper-parameters) and which are trained on; the three sets are
disjoint and every speaker of the plan is tested in exactly one fold. Plans are data: they
are built once (:func:`make_plan`), written to JSON (:meth:`FoldPlan.to_json`) and read back
(:meth:`FoldPlan.from_json`), so a result file can name the exact split it used.

**The rule of** :func:`make_plan`

1. Order the speakers: sorted (numeric ids by number) or, with ``order="shuffle"``, sorted
   and then shuffled by ``random.Random(seed)``. The order used is stored in the plan.
2. Cut the order into ``k`` consecutive groups; when ``k`` does not divide the number of
   speakers the first groups get one speaker more (as ``numpy.array_split``). Fold i tests
   group i.
3. Validation speakers of fold i come from the *next* groups (i+1, i+2, ... cyclically),
   in plan order: the first ``n_val`` of them, or, when ``genders`` are given, picked
   round-robin over the genders (in order of first appearance) so that the validation set
   is gender-balanced (one male and one female for ``n_val=2``).
4. Training speakers are all the others.

**Built-in plans** describe datasets; they are data, shipped as ``avemo/datasets/plans/NAME.json``
(:func:`list_builtin_plans`, :func:`builtin_plan`). Both RAVDESS plans follow one rule
(:func:`ravdess_plan`): the actors sorted by number, cut into folds of 4 in order, with 2
gender-balanced validation speakers from the next group (RAVDESS: odd actors male, even female):

* ``ravdess``: the standard plan of the dataset, all 24 actors, 6 folds (18 train / 2 val / 4 test
  speakers per fold);
* ``ravdess_au``: the 20 actors of the RAVDESS-AU benchmark (01-24 without 03, 10, 17, 24, the
  copy this project has), 5 folds -- test speakers 01 02 04 05 | 06 07 08 09 | 11 12 13 14 |
  15 16 18 19 | 20 21 22 23, hence 14 train / 2 val / 4 test speakers per fold.

Without a plan name, a dataset's folder is split by the smallest built-in plan of its dataset that
covers its speakers (:func:`covering_plan`): the 20-actor copy by ``ravdess_au``, all 24 actors by
``ravdess``.

* ``iemocap_loso``: IEMOCAP's leave-one-session-out plan, 10 speakers (``Ses01F`` ... ``Ses05M``,
  session + gender), 5 folds; fold k tests session k and validates on session k+1 (cyclically), so
  that the two speakers of a session -- who share every dialogue -- stay on one side. Fold 5 is
  paper 002's split: sessions 1-4 for training and validation, session 5 for testing.

:func:`check_leakage` raises a :class:`~avemo.errors.LeakageError` when a speaker, a take
(in any modality: a RAVDESS 01 video and the 03 audio of its take share the take) or a dialogue
(its utterances are each other's context) is in two partitions of a fold; :func:`split` runs it
on every split it makes. Corpora with an official split whose speakers recur in every partition
(MELD) are split by :func:`official_split`, which keeps takes and dialogues apart.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from avemo import config as cfg
from avemo.datasets.folder import DATASET as FOLDER
from avemo.datasets.pairing import Take
from avemo.datasets.records import Clip
from avemo.datasets.scan import speaker_sort_key
from avemo.errors import ConfigError, DatasetError, LeakageError

FORMAT = "avemo.fold_plan/1"
PARTITIONS = ("train", "val", "test")
_MAX_LISTED = 5


@dataclass(frozen=True)
class Fold:
    """One fold: speaker ids of each partition (sorted); ``number`` counts from 1."""

    number: int
    test: tuple[str, ...]
    val: tuple[str, ...]
    train: tuple[str, ...]

    def __post_init__(self) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)), key=speaker_sort_key)
            if both:
                raise LeakageError(f"fold {self.number}: speaker(s) {', '.join(both)} in both {a} and {b}")

    def partition_of(self, speaker: str) -> str | None:
        """``"train"``, ``"val"``, ``"test"`` or None when the speaker is not in this fold."""
        for name in PARTITIONS:
            if speaker in getattr(self, name):
                return name
        return None

    @property
    def speakers(self) -> tuple[str, ...]:
        return self.train + self.val + self.test


@dataclass(frozen=True)
class FoldPlan:
    """A speaker-disjoint cross-validation plan for one dataset (see the module doc).

    Attributes:
        name: the plan's name (``"ravdess_au"``).
        dataset: the ``Clip.dataset`` the speaker ids belong to.
        speakers: every speaker of the plan, in the order the folds were cut from.
        folds: the folds, numbered 1..k.
        rule: how the plan was made, in words (printed into result files).
        order: ``"sorted"`` or ``"shuffle"``.
        seed: the shuffle seed (None for sorted plans).
        n_val: validation speakers per fold.
    """

    name: str
    dataset: str
    speakers: tuple[str, ...]
    folds: tuple[Fold, ...]
    rule: str = ""
    order: Literal["sorted", "shuffle"] = "sorted"
    seed: int | None = None
    n_val: int = 0

    def __post_init__(self) -> None:
        validate_plan(self)

    def __len__(self) -> int:
        return len(self.folds)

    def __iter__(self) -> Iterator[Fold]:
        return iter(self.folds)

    def fold(self, number: int) -> Fold:
        """The fold numbered ``number`` (1-based)."""
        if not 1 <= number <= len(self.folds):
            raise ConfigError(f"plan {self.name!r} has folds 1..{len(self.folds)}, not {number}")
        return self.folds[number - 1]

    def split(self, items: Iterable[Clip | Take], number: int, *, extra: Literal["error", "drop"] = "error") -> Split:
        """:func:`split` of clips or takes by fold ``number``, checking they are of this plan's dataset."""
        items = list(items)
        foreign = sorted({c.dataset for c in items} - {self.dataset})
        if foreign:
            raise DatasetError(f"plan {self.name!r} is for {self.dataset} clips, got clips of {foreign}")
        return split(items, self.fold(number), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **cfg.to_dict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "fold plan") -> FoldPlan:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != FORMAT:
            raise ConfigError(f"{where}: format {fmt!r} is not {FORMAT!r}")
        return cfg.from_dict(cls, data, where=where)

    def to_json(self, path: str | Path) -> Path:
        """Write the plan as JSON, one line per key and per fold (diff-friendly); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        folds = data.pop("folds")
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in data.items()]
        lines.append('  "folds": [')
        lines += [f"    {json.dumps(fold)}," for fold in folds]
        lines[-1] = lines[-1].rstrip(",")
        lines.append("  ]")
        path.write_text("{\n" + "\n".join(lines) + "\n}\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> FoldPlan:
        """Read and validate a plan written by :meth:`to_json`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read fold plan ({exc.strerror or exc})", path) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"fold plan is not valid JSON ({exc})", path) from None
        try:
            return cls.from_dict(data, where="fold plan")
        except (ConfigError, LeakageError) as exc:
            exc.path = str(path)
            raise


def validate_plan(plan: FoldPlan) -> None:
    """Check a plan's invariants.

    Raises:
        LeakageError: a speaker is in two partitions of a fold.
        ConfigError: fold numbers are not 1..k, a fold does not cover exactly the plan's
            speakers, a speaker is tested in zero or several folds, a fold has no training
            speaker, or the plan's speakers repeat.
    """
    where = f"fold plan {plan.name!r}"
    if len(set(plan.speakers)) != len(plan.speakers):
        raise ConfigError(f"{where}: speakers repeat")
    if not plan.folds:
        raise ConfigError(f"{where}: no folds")
    everyone = set(plan.speakers)
    tested: dict[str, int] = {}
    for i, fold in enumerate(plan.folds, start=1):
        if fold.number != i:
            raise ConfigError(f"{where}: fold {i} is numbered {fold.number}")
        covered = fold.speakers
        if len(set(covered)) != len(covered) or set(covered) != everyone:
            extra = sorted(set(covered) - everyone, key=speaker_sort_key)
            lacking = sorted(everyone - set(covered), key=speaker_sort_key)
            raise ConfigError(
                f"{where} fold {i} does not partition the plan's speakers (unknown {', '.join(extra) or 'none'}, missing {', '.join(lacking) or 'none'})"
            )
        if not fold.train or not fold.test:
            raise ConfigError(f"{where} fold {i} has no training or no test speaker")
        for s in fold.test:
            tested[s] = tested.get(s, 0) + 1
    wrong = sorted((s for s in everyone if tested.get(s, 0) != 1), key=speaker_sort_key)
    if wrong:
        counts = ", ".join(f"{s}: {tested.get(s, 0)}" for s in wrong[:_MAX_LISTED])
        raise ConfigError(f"{where}: every speaker must be tested exactly once (times tested: {counts})")


def _groups(order: Sequence[str], k: int) -> list[list[str]]:
    size, rest = divmod(len(order), k)
    groups, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < rest else 0)
        groups.append(list(order[start:end]))
        start = end
    return groups


def _pick_validation(candidates: Sequence[str], n_val: int, genders: Mapping[str, str] | None) -> list[str]:
    if genders is None:
        return list(candidates[:n_val])
    queues: dict[str, list[str]] = {}
    for s in candidates:  # genders in order of first appearance, speakers in plan order
        queues.setdefault(genders[s], []).append(s)
    picked: list[str] = []
    while len(picked) < n_val and any(queues.values()):
        for queue in queues.values():
            if queue and len(picked) < n_val:
                picked.append(queue.pop(0))
    return picked


def make_plan(
    speakers: Iterable[str],
    k: int,
    *,
    n_val: int = 2,
    order: Literal["sorted", "shuffle"] = "sorted",
    seed: int = 0,
    genders: Mapping[str, str] | None = None,
    name: str = "plan",
    dataset: str = "",
) -> FoldPlan:
    """Build a speaker-disjoint k-fold plan (the rule is in the module doc).

    Args:
        speakers: speaker ids (duplicates are ignored: pass ``scan.speakers`` or clip speakers).
        k: number of folds, 2..number of speakers.
        n_val: validation speakers per fold (0 for none).
        order: ``"sorted"`` (numeric ids by number) or ``"shuffle"`` (seeded).
        seed: the shuffle seed; ignored (stored as None) for sorted plans.
        genders: speaker -> gender; when given, validation speakers are gender-balanced.
        name: the plan's name.
        dataset: the ``Clip.dataset`` of the speakers.
    """
    ordered = sorted(set(speakers), key=speaker_sort_key)
    if order == "shuffle":
        random.Random(seed).shuffle(ordered)
    elif order != "sorted":
        raise ConfigError(f"plan order {order!r} is not 'sorted' or 'shuffle'")
    if not 2 <= k <= len(ordered):
        raise ConfigError(f"cannot make {k} folds from {len(ordered)} speakers (need 2 <= k <= speakers)")
    groups = _groups(ordered, k)
    smallest_rest = len(ordered) - max(len(g) for g in groups)
    if not 0 <= n_val < smallest_rest:
        raise ConfigError(
            f"n_val={n_val} leaves no training speaker: at most {smallest_rest - 1} of the "
            f"{smallest_rest} non-test speakers of a fold can be validation speakers"
        )
    if genders is not None:
        lacking = [s for s in ordered if s not in genders]
        if lacking:
            raise ConfigError(f"genders lack speaker(s) {', '.join(lacking[:_MAX_LISTED])}")
    folds = []
    for i, test in enumerate(groups):
        candidates = [s for j in range(1, k) for s in groups[(i + j) % k]]
        val = _pick_validation(candidates, n_val, genders)
        train = [s for s in ordered if s not in test and s not in val]
        folds.append(
            Fold(
                number=i + 1,
                test=tuple(sorted(test, key=speaker_sort_key)),
                val=tuple(sorted(val, key=speaker_sort_key)),
                train=tuple(sorted(train, key=speaker_sort_key)),
            )
        )
    how = "sorted" if order == "sorted" else f"sorted then shuffled with random.Random({seed})"
    if n_val == 0:
        val_rule = "none"
    elif genders is None:
        val_rule = f"the first {n_val} speakers of the next fold's group(s) in plan order"
    else:
        val_rule = (
            f"{n_val} speakers of the next fold's group(s), taken in plan order round-robin over "
            "genders (gender-balanced)"
        )
    rule = f"{len(ordered)} speakers {how}, cut into {k} consecutive groups; fold i tests group i; validation: {val_rule}"
    return FoldPlan(
        name=name,
        dataset=dataset,
        speakers=tuple(ordered),
        folds=tuple(folds),
        rule=rule,
        order=order,
        seed=seed if order == "shuffle" else None,
        n_val=n_val,
    )


def merge_plans(plans: Sequence[FoldPlan], *, name: str, dataset: str) -> FoldPlan:
    """One plan whose fold i is fold i of every plan together: plans of disjoint speakers with as
    many folds each, e.g. one per corpus of a multi-corpus run, so that every fold tests (and
    validates on) speakers of every corpus instead of one corpus at a time."""
    sizes = {len(p.folds) for p in plans}
    if len(sizes) != 1:
        raise ConfigError(f"plans to merge need as many folds each, got {[len(p.folds) for p in plans]}")
    folds = tuple(Fold(number=i + 1, **{part: tuple(s for p in plans for s in getattr(p.folds[i], part))
                                          for part in PARTITIONS}) for i in range(sizes.pop()))
    rule = "fold i is fold i of each of these plans together: " + "; ".join(f"{p.name}: {p.rule}" for p in plans)
    return FoldPlan(name=name, dataset=dataset, speakers=tuple(s for p in plans for s in p.speakers), folds=folds,
                    rule=rule, n_val=sum(p.n_val for p in plans))


def ravdess_plan(actors: Iterable[str], k: int, *, name: str, n_val: int = 2) -> FoldPlan:
    """A RAVDESS plan by the rule of the built-in ones (module doc): ``actors`` sorted, ``k`` folds,
    ``n_val`` gender-balanced validation speakers. The shipped plans are
    ``ravdess_plan(ACTORS, 6, name="ravdess")`` and ``ravdess_plan(<the 20 actors>, 5, name="ravdess_au")``."""
    from avemo.datasets.ravdess import ravdess_gender

    actors = tuple(actors)
    return make_plan(actors, k, n_val=n_val, genders={s: ravdess_gender(s) for s in actors}, name=name,
                     dataset="ravdess")


def list_builtin_plans() -> list[str]:
    """Names of the plans shipped in ``avemo/datasets/plans/``."""
    folder = resources.files("avemo.datasets") / "plans"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def builtin_plan(name: str) -> FoldPlan:
    """A plan shipped with avemo (``"ravdess"``, ``"ravdess_au"``, ``"iemocap_loso"``: :func:`list_builtin_plans`),
    read from its JSON file."""
    known = list_builtin_plans()
    if name not in known:
        raise ConfigError(f"no built-in fold plan {name!r}; known: {', '.join(known)}")
    resource = resources.files("avemo.datasets") / "plans" / f"{name}.json"
    with resources.as_file(resource) as path:
        return FoldPlan.from_json(path)


def covering_plan(dataset: str, speakers: Iterable[str]) -> FoldPlan | None:
    """The built-in plan of ``dataset`` with the fewest speakers that includes every one of
    ``speakers`` (the plan of exactly this copy of the dataset when there is one), or None."""
    wanted = set(speakers)
    plans = [builtin_plan(n) for n in list_builtin_plans()]
    fits = [p for p in plans if p.dataset == dataset and wanted <= set(p.speakers)]
    return min(fits, key=lambda p: (len(p.speakers), p.name)) if fits else None


@dataclass(frozen=True)
class Split:
    """One fold's items -- clips, or takes (the files of one performance) -- by partition.

    Unpacks as ``train, val, test``. ``number`` is the fold's number (1-based; 0 for a split that
    comes from no plan, e.g. training without a test partition).
    """

    train: list
    val: list
    test: list
    number: int = 0

    def __iter__(self) -> Iterator[list]:
        return iter((self.train, self.val, self.test))


def _clips_of(item: Clip | Take) -> list[Clip]:
    """The clips of an item as the leakage check compares them. A labelled folder's speaker and take ids
    are the user's names, local to that folder: in a multi-corpus take (its corpus name and qualified
    speaker, ``mine:01``) they are compared under the take's, else two folder corpora's speakers ``01``
    (two people) and their files of one name were one speaker and one take, and a valid split was refused
    as leaking. A named dataset's ids are the corpus's own (RAVDESS actor 01, take 01-07-02-02-01-01),
    the same person and performance in two corpora that read it: compared as they are."""
    if not isinstance(item, Take):
        return [item]
    return [dataclasses.replace(c, dataset=item.dataset, speaker=item.speaker)
            if c.dataset == FOLDER and (c.dataset, c.speaker) != (item.dataset, item.speaker) else c for c in item]


def split(items: Iterable[Clip | Take], fold: Fold, *, extra: Literal["error", "drop"] = "error") -> Split:
    """Put each clip or take in the partition of its speaker, in input order, and check for leakage.

    Args:
        items: clips or takes of one dataset (speaker ids are only unique within a dataset), or
            of several when every speaker id is qualified by its corpus (``emodb:03``, multi-corpus
            training: :mod:`avemo.training.corpora`).
        fold: the fold.
        extra: what to do with items whose speaker is in no partition of the fold:
            ``"error"`` (DatasetError listing them) or, asked for explicitly, ``"drop"``.

    Raises:
        DatasetError: items of several datasets, or unknown speakers with ``extra="error"``.
        LeakageError: a take ends up in two partitions (see :func:`check_leakage`).
    """
    items = list(items)
    datasets = sorted({c.dataset for c in items})
    if len(datasets) > 1 and not all(":" in c.speaker for c in items):
        raise DatasetError(f"a fold plan covers one dataset (or speakers qualified as corpus:speaker); "
                           f"the clips are of {datasets}")
    parts: dict[str, list] = {p: [] for p in PARTITIONS}
    unknown: set[str] = set()
    for item in items:
        part = fold.partition_of(item.speaker)
        if part is None:
            unknown.add(item.speaker)
        else:
            parts[part].append(item)
    if unknown and extra == "error":
        listed = sorted(unknown, key=speaker_sort_key)
        raise DatasetError(
            f"speaker(s) {', '.join(listed[:_MAX_LISTED])} of the clips are in no partition of fold {fold.number}; "
            "filter the clips or pass extra='drop'"
        )
    result = Split(parts["train"], parts["val"], parts["test"], fold.number)
    check_leakage(*([c for item in part for c in _clips_of(item)] for part in result))
    return result


def official_split(items: Iterable[Clip | Take]) -> Split:
    """Split clips (or takes) by their corpus's official partition (:attr:`Clip.split`): ``train``
    trains, ``dev`` validates (early stopping, model selection), ``test`` tests. For corpora that
    define one (MELD), whose speakers (the characters of a TV series) recur in every partition:
    takes and dialogues are checked for leakage, speakers are not.

    Raises:
        DatasetError: an item has no official split.
        LeakageError: a take or a dialogue is in two partitions.
    """
    parts: dict[str, list] = {p: [] for p in PARTITIONS}
    to_partition = {"train": "train", "dev": "val", "test": "test"}
    for item in items:
        first = _clips_of(item)[0]
        if first.split is None:
            raise DatasetError(f"{first.take_key} has no official split; split it by a fold plan", first.path)
        parts[to_partition[first.split]].append(item)
    result = Split(parts["train"], parts["val"], parts["test"])
    check_leakage(*([c for item in part for c in _clips_of(item)] for part in result), speakers=False)
    return result


def _named(clip: Clip) -> str:
    return clip.path.name if clip.has("audio") or clip.has("video") else clip.take


def check_leakage(
    train: Iterable[Clip], val: Iterable[Clip], test: Iterable[Clip], *, speakers: bool = True
) -> None:
    """Raise a LeakageError if a take, a dialogue or (``speakers=True``) a speaker is in two of the
    partitions.

    Speakers, takes and dialogues are compared dataset-qualified (:attr:`Clip.speaker_key`,
    :attr:`Clip.take_key`, :attr:`Clip.dialogue_key`); a take covers every modality, so a RAVDESS
    ``01`` video in one partition and its ``03`` audio in another is caught, and the utterances of
    one dialogue (its context) stay on one side. ``val`` may be empty. ``speakers=False`` is for
    the official splits of corpora whose speakers recur in every partition (:func:`official_split`).
    """
    speaker_parts: dict[str, dict[str, Clip]] = {}
    take_parts: dict[str, dict[str, Clip]] = {}
    dialogue_parts: dict[str, dict[str, Clip]] = {}
    for name, part in zip(PARTITIONS, (train, val, test), strict=True):
        for clip in part:
            speaker_parts.setdefault(clip.speaker_key, {}).setdefault(name, clip)
            take_parts.setdefault(clip.take_key, {}).setdefault(name, clip)
            if clip.dialogue_key is not None:
                dialogue_parts.setdefault(clip.dialogue_key, {}).setdefault(name, clip)
    problems = []
    tables = (("take", take_parts), ("dialogue", dialogue_parts)) + ((("speaker", speaker_parts),) if speakers else ())
    for kind, table in tables:
        for key, where in table.items():
            if len(where) > 1:
                sides = " and ".join(f"{p} ({_named(c)})" for p, c in where.items())
                problems.append(f"{kind} {key} is in {sides}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise LeakageError("; ".join(problems[:3]) + more)
