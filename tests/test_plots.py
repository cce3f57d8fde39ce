"""Report figures are written as valid PNG files."""

from __future__ import annotations

import numpy as np

from avemo.plots import plot_confusion, plot_curves, plot_fold_curves, plot_roc

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_are_pngs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet(np.ones(3), size=60)
    labels = ["a", "b", "c"]
    paths = [
        plot_confusion([[5, 1, 0], [2, 3, 1], [0, 0, 6]], labels, tmp_path / "cm.png", title="t"),
        plot_roc(y, p, labels, tmp_path / "roc.png"),
        plot_curves(
            [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.1 * e} for e in range(1, 6)],
            tmp_path / "sub" / "curves.png",
            best_epoch=3,
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG
        assert path.stat().st_size > 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "roc.png", "sub"]


def test_curves_of_a_single_epoch_are_drawn_as_points(tmp_path, monkeypatch):
    """A model fitted in closed form (whisper_logreg) has one history row: its curves.png had axes and a
    legend but no data, as a line of one point is not drawn."""
    from avemo import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: drawn.append(fig) or path)
    for rows in (1, 3):
        plot_curves([{"epoch": e, "train_loss": 0.5, "val_loss": 0.6, "train_accuracy": 0.9, "val_accuracy": 0.8,
                      "val_uar": 0.7} for e in range(1, rows + 1)], tmp_path / "curves.png", best_epoch=1)
    one, three = ([line.get_marker() for ax in fig.axes for line in ax.lines if line.get_label()[0] != "_"]
                  for fig in drawn)
    assert one == ["o"] * 5 and three == ["None"] * 5


def test_fold_curves_of_one_epoch_without_validation_are_drawn_and_named(tmp_path, monkeypatch, recwarn):
    """`avemo benchmark` with 1 epoch (a quick check of the frame models) on folds without validation
    speakers: its MODEL_curves.png had empty axes (a line of one point is not drawn, the training line
    had no label) and matplotlib said "No artists with labels found to put in legend" on stderr."""
    from avemo import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: drawn.append(fig) or path)
    plot_fold_curves([[{"epoch": 1, "train_loss": 2.1}], [{"epoch": 1, "train_loss": 1.9, "val_loss": 2.0,
                                                           "val_accuracy": 0.3}]], tmp_path / "curves.png", folds=[2, 4])
    loss, accuracy = drawn[0].axes
    assert [line.get_marker() for line in loss.lines] == ["o"] * 3  # fold 1's training; fold 2's training, validation
    assert [line.get_label() for line in loss.lines if not line.get_label().startswith("_")] == [
        "fold 2 (no validation)", "fold 4"]  # --folds 2,4: named as in the plan, not 1 and 2
    assert [line.get_marker() for line in accuracy.lines] == ["o"]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["fold 2 (no validation)", "fold 4"]
    assert list(loss.get_xticks()) == [1]
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]


def test_training_curves_tick_whole_epochs_only(tmp_path, monkeypatch):
    """A 3-epoch run's curves (avemo benchmark, avemo train --plots) were ticked 1.0, 1.5, 2.0, 2.5, 3.0."""
    from avemo import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: drawn.append(fig) or path)
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "val_accuracy": 0.2 * e,
                "train_accuracy": 0.2 * e} for e in (1, 2, 3)]
    plot_fold_curves([history, history], tmp_path / "folds.png")
    plot_curves(history, tmp_path / "one.png")
    for fig in drawn:
        for ax in fig.axes:
            fig.canvas.draw()
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
