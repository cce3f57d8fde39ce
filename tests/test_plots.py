"""Report figures are written as valid PNG files."""

from __future__ import annotations

import numpy as np

from avemo.plots import plot_confusion, plot_curves, plot_roc

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
