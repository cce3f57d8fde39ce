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
