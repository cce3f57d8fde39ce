"""PNG figures for reports: confusion matrix, per-class ROC curves with AUC, reliability diagram, training curves.

Every function writes one PNG atomically (temporary name, then rename) and returns its path.
Matplotlib runs with the non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from avemo.metrics import ReliabilityBin, roc_auc, roc_curve


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=110)


def _save(plt, fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:  # an error or Ctrl-C while saving leaves no half-written figure
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path, title: str = "") -> Path:
    """Row-normalised confusion matrix (recall per true class), with counts in the cells."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    plt, fig = _figure(1.0 + 0.6 * len(labels), 0.8 + 0.55 * len(labels))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.55 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def plot_roc(y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], path, title: str = "") -> Path:
    """One-vs-rest ROC curve of every class, AUC in the legend."""
    y_true = np.asarray(y_true, dtype=int)
    plt, fig = _figure(5.5, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    for c, name in enumerate(labels):
        positives = y_true == c
        if not positives.any() or positives.all():
            continue
        fpr, tpr = roc_curve(positives, probabilities[:, c])
        ax.plot(fpr, tpr, lw=1.4, label=f"{name} (AUC {roc_auc(positives, probabilities[:, c]):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def plot_reliability(bins: Sequence[ReliabilityBin], path, title: str = "", ece: float | None = None) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration,
    with the number of predictions in each bin written above its bar."""
    plt, fig = _figure(5.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    used = [b for b in bins if b.count]
    ax.bar([b.lower for b in used], [b.accuracy for b in used], width=[b.upper - b.lower for b in used],
           align="edge", color="tab:blue", edgecolor="white", alpha=0.8, label="accuracy")
    ax.plot([b.confidence for b in used], [b.confidence for b in used], "o", color="tab:red", ms=3,
            label="mean confidence")
    for b in used:
        ax.text((b.lower + b.upper) / 2, min(b.accuracy + 0.02, 0.97), str(b.count), ha="center", fontsize=6)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, loc="upper left")
    heading = ", ".join(t for t in (title, f"ECE {100 * ece:.1f} %" if ece is not None else "") if t)
    if heading:
        ax.set_title(heading)
    return _save(plt, fig, path)


def plot_curves(history: Sequence[Mapping[str, float]], path, title: str = "", best_epoch: int | None = None) -> Path:
    """Training / validation loss and validation accuracy per epoch (from a trainer's history rows); a
    single epoch (a model fitted in closed form, ``whisper_logreg``) as points: a line of one point is
    not drawn, and its figure came out empty."""
    epochs = [row["epoch"] for row in history]
    marker = "o" if len(epochs) == 1 else None
    plt, fig = _figure(7.5, 3.2)
    ax1 = fig.add_subplot(1, 2, 1)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if history and key in history[0]:
            ax1.plot(epochs, [row[key] for row in history], label=label, marker=marker)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation"), ("val_uar", "validation UAR")):
        if history and key in history[0]:
            ax2.plot(epochs, [row[key] for row in history], label=label, marker=marker)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        if marker is not None:
            ax.set_xticks(epochs)  # the epoch, not 0.96 ... 1.04 around it
        else:
            _whole_epochs(ax)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def _whole_epochs(ax) -> None:
    """Ticks at whole epochs only: 3 epochs were labelled 1.0, 1.5, 2.0, 2.5, 3.0."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_fold_curves(histories: Sequence[Sequence[Mapping[str, float]]], path, title: str = "",
                     folds: Sequence[int] | None = None) -> Path:
    """Validation loss and accuracy per epoch of every fold (one line per fold; ``folds``: their numbers in
    the plan, by default 1, 2, ..., so that ``--folds 2,4`` is not drawn as folds 1 and 2). A fold of one epoch is
    drawn as points, and a fold without validation names its training line: a 1-epoch run (a quick
    check of frame models) or folds without validation speakers gave empty axes and matplotlib's
    "No artists with labels found to put in legend" on stderr."""
    plt, fig = _figure(7.5, 3.2)
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    for i, (history, fold) in enumerate(zip(histories, folds or range(1, len(histories) + 1), strict=True), start=1):
        epochs = [row["epoch"] for row in history]
        marker, validated = "o" if len(epochs) == 1 else None, bool(history) and "val_loss" in history[0]
        if history and "train_loss" in history[0]:
            ax1.plot(epochs, [row["train_loss"] for row in history], lw=0.8, ls="--", color=f"C{i - 1}",
                     marker=marker, label=None if validated else f"fold {fold} (no validation)")
        if validated:
            ax1.plot(epochs, [row["val_loss"] for row in history], lw=1.2, color=f"C{i - 1}", label=f"fold {fold}",
                     marker=marker)
            ax2.plot(epochs, [row["val_accuracy"] for row in history], lw=1.2, color=f"C{i - 1}", label=f"fold {fold}",
                     marker=marker)
    longest = max((len(h) for h in histories), default=0)
    for ax in (ax1, ax2):
        if longest == 1:
            ax.set_xticks([1])  # the epoch, not 0.96 ... 1.04 around it
        else:
            _whole_epochs(ax)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (dashed: train, solid: validation)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)
