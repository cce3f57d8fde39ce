"""Datasets: readers that turn folders into typed :class:`Clip` records, take pairing,
external per-take feature tables, and speaker-disjoint fold plans.

* readers (:mod:`~avemo.datasets.readers`): ``read_dataset(name, root)`` for ``ravdess``,
  ``crema_d``, ``emodb``, ``folder`` (a folder + labels CSV) and the corpora of dialogues ``meld``
  (:mod:`~avemo.datasets.meld`) and ``iemocap`` (:mod:`~avemo.datasets.iemocap`) returns a
  :class:`ScanResult` (clips + skipped files with reasons); ``parse_file_name(name)``
  parses one file name;
* IEMOCAP's utterance videos (:mod:`~avemo.datasets.iemocap_video`, not imported here: it loads
  PyAV): ``prepare_iemocap(root, out)`` cuts them from the dialogue videos, ``read_dataset("iemocap",
  root, media=out)`` reads them;
* label sets and maps between them (:mod:`~avemo.datasets.labels`);
* pairing (:mod:`~avemo.datasets.pairing`): ``pair_takes(clips)`` groups the 01/02/03
  files of a take;
* tables (:mod:`~avemo.datasets.tables`, :mod:`~avemo.datasets.openface`): the shared
  ``openface_au_means`` table and a user's OpenFace per-frame CSVs, attached to clips by take;
* fold plans (:mod:`~avemo.datasets.folds`): ``builtin_plan("ravdess")`` (all 24 actors) and
  ``builtin_plan("ravdess_au")`` (the 20 of RAVDESS-AU), ``builtin_plan("iemocap_loso")``,
  ``covering_plan``, ``make_plan``, ``merge_plans``, ``split``, ``official_split`` (MELD), ``check_leakage``.
"""

from avemo.datasets.crema_d import load_crema_d_demographics, parse_crema_d_name, read_crema_d
from avemo.datasets.emodb import parse_emodb_name, read_emodb
from avemo.datasets.folder import read_folder
from avemo.datasets.folds import (
    Fold,
    FoldPlan,
    Split,
    builtin_plan,
    check_leakage,
    covering_plan,
    list_builtin_plans,
    make_plan,
    merge_plans,
    official_split,
    ravdess_plan,
    split,
)
from avemo.datasets.iemocap import iemocap_label_set, read_iemocap
from avemo.datasets.labels import (
    COMPARISON_MERGES,
    CREMA_D,
    EMODB,
    FER2013,
    IEMOCAP4,
    IEMOCAP6,
    MELD,
    RAVDESS,
    Comparison,
    LabelMap,
    LabelSet,
    comparison_map,
    get_label_set,
    label_map,
    label_set_for,
    normalise_emotion,
)
from avemo.datasets.meld import read_meld
from avemo.datasets.openface import OpenFaceConfig, openface_functionals, openface_table, read_openface_csv
from avemo.datasets.pairing import Take, pair_takes
from avemo.datasets.ravdess import parse_ravdess_name, ravdess_gender, ravdess_take, read_ravdess
from avemo.datasets.readers import (
    DATASET_LABEL_SETS,
    laid_out_as,
    list_datasets,
    parse_file_name,
    read_dataset,
    take_of_stem,
)
from avemo.datasets.records import Clip
from avemo.datasets.scan import ScanResult, Skipped
from avemo.datasets.tables import (
    AU_MEANS_COLUMNS,
    AU_MEANS_NAME,
    Attached,
    VisualTable,
    attach,
    load_au_means,
    load_table,
)
from avemo.modality import Modality

__all__ = [
    "AU_MEANS_COLUMNS",
    "AU_MEANS_NAME",
    "COMPARISON_MERGES",
    "CREMA_D",
    "DATASET_LABEL_SETS",
    "EMODB",
    "FER2013",
    "IEMOCAP4",
    "IEMOCAP6",
    "MELD",
    "RAVDESS",
    "Attached",
    "Clip",
    "Comparison",
    "Fold",
    "FoldPlan",
    "LabelMap",
    "LabelSet",
    "Modality",
    "OpenFaceConfig",
    "ScanResult",
    "Skipped",
    "Split",
    "Take",
    "VisualTable",
    "attach",
    "builtin_plan",
    "covering_plan",
    "official_split",
    "check_leakage",
    "comparison_map",
    "get_label_set",
    "iemocap_label_set",
    "label_map",
    "label_set_for",
    "list_builtin_plans",
    "list_datasets",
    "load_au_means",
    "load_crema_d_demographics",
    "load_table",
    "make_plan",
    "merge_plans",
    "normalise_emotion",
    "openface_functionals",
    "openface_table",
    "laid_out_as",
    "pair_takes",
    "parse_crema_d_name",
    "parse_emodb_name",
    "parse_file_name",
    "parse_ravdess_name",
    "ravdess_plan",
    "ravdess_gender",
    "ravdess_take",
    "read_crema_d",
    "read_dataset",
    "read_emodb",
    "read_folder",
    "read_iemocap",
    "read_meld",
    "read_openface_csv",
    "read_ravdess",
    "split",
    "take_of_stem",
]
