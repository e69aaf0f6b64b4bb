"""Figures are drawn without pyplot and land as decodable PNGs of the expected size."""

from __future__ import annotations

import sys

import matplotlib.image

from stitchwork.sweep.rebasin_figures import plot_curves, plot_histograms
from stitchwork.utils.figures import new_figure, save_figure


def test_saved_figure_has_the_pixel_size_of_figsize_times_dpi(tmp_path):
    fig = new_figure((3, 2))
    fig.subplots().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "deep" / "er" / "f.png", dpi=50)
    assert matplotlib.image.imread(path).shape[:2] == (100, 150)


def test_rebasin_curves_and_histograms(tmp_path):
    curve = {"lambda": [0, 0.5, 1], "test": {"loss": [0.1, 2.0, 0.2], "acc": [0.9, 0.3, 0.88]}}
    curves = plot_curves({"aligned": curve, "naive": curve}, tmp_path / "curves.png")
    hist = plot_histograms({"aligned": [0.1, 0.2, 0.3], "naive": [1.0, 1.5]}, tmp_path / "h.png", "loss")
    assert matplotlib.image.imread(curves).shape[:2] == (420, 1080)  # (9, 3.5) in at 120 dpi
    assert matplotlib.image.imread(hist).shape[:2] == (420, 600)
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib.pyplot"].get_fignums() == []
