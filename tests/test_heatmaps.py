"""Layer × layer matrices of stitching sweeps: the numbers plotted, the groups, the sanity ranks, the PNGs."""

from __future__ import annotations

import csv
import math
import random

import numpy as np
import pytest
from matplotlib.image import imread

from stitchwork.sweep.heatmaps import (
    LayerMatrix,
    group_keys,
    layer_matrix,
    profile_matrix,
    sanity_ranks,
    sanity_summary,
    split_groups,
    stitching_heatmaps,
)

LAYERS = ["conv1", "conv2", "conv3", "pool"]


def _row(front, back, method, acc, residual, status="ok", seed_b=1):
    target = f"stitchwork.stitching.matching.{method}"
    row = {"app": "stitch", "status": status, "path": f"{front}-{back}-{method}",
           "config.layer_pair.front": front, "config.layer_pair.back": back,
           "config.matching._target_": target, "config.seed_b": seed_b,
           "config.matching.epochs": None if method == "direct" else 5,
           "config.trainer.accelerator": random.choice(["cpu", "auto"])}  # fmt: skip
    if status == "ok":
        row.update({"metrics.stitched_acc": acc, "metrics.relative_acc": acc / 0.9,
                    "metrics.dm_residual_test": residual, "metrics.index_a": LAYERS.index(front),
                    "metrics.index_b": LAYERS.index(back)})  # fmt: skip
    return row


def _planted(method="direct", seed=0):
    """A shuffled front x back sweep whose accuracy is 0.1*i + 0.01*j and residual |i - j|."""
    rows = [
        _row(f, b, method, 0.1 * i + 0.01 * j, abs(i - j))
        for i, f in enumerate(LAYERS)
        for j, b in enumerate(LAYERS)
    ]
    rows[5] = _row(
        rows[5]["config.layer_pair.front"],
        rows[5]["config.layer_pair.back"],
        method,
        0,
        0,
        "failed",
    )
    random.Random(seed).shuffle(rows)
    return rows


def test_layer_matrix_is_the_planted_matrix_in_network_order():
    m = layer_matrix(_planted(), "stitched_acc")
    expected = np.array([[0.1 * i + 0.01 * j for j in range(4)] for i in range(4)])
    expected[1, 1] = np.nan  # rows[5] = (conv2, conv2) failed: an empty cell
    assert m.row_labels == LAYERS and m.col_labels == LAYERS
    np.testing.assert_array_equal(np.isnan(m.values), np.isnan(expected))
    np.testing.assert_allclose(m.values[~np.isnan(expected)], expected[~np.isnan(expected)])


def test_groups_are_the_varying_config_values_without_redundant_or_runtime_keys():
    rows = _planted("direct") + _planted("task_loss", seed=1)
    # matching.epochs follows matching._target_; trainer.* never groups; seed_b does not vary
    assert group_keys(rows) == ["config.matching._target_"]
    groups = split_groups(rows)
    assert list(groups) == ["matching=direct", "matching=task_loss"]
    assert all(len(g) == 16 for g in groups.values())
    rows += [_row("conv1", "conv1", "direct", 0.5, 0.0, seed_b=0)]
    assert group_keys(rows) == ["config.matching._target_", "config.seed_b"]


def test_profile_matrix_of_same_layer_sweeps_is_group_by_layer():
    rows = [_row(layer, layer, m, acc, 0.0) for m, base in (("direct", 0.5), ("task_loss", 0.8))
            for layer, acc in zip(LAYERS, np.linspace(base, base + 0.1, 4), strict=True)]  # fmt: skip
    m = profile_matrix(split_groups(rows), "stitched_acc")
    assert m.row_labels == ["matching=direct", "matching=task_loss"] and m.col_labels == LAYERS
    np.testing.assert_allclose(m.values, [np.linspace(0.5, 0.6, 4), np.linspace(0.8, 0.9, 4)])


def test_sanity_ranks_count_strictly_better_candidates():
    values = np.array([[0.9, 0.8, 0.9], [0.95, 0.7, 0.6], [0.1, 0.2, np.nan]])
    m = LayerMatrix("", "stitched_acc", ["a", "b", "c"], ["a", "b", "c"], values)
    ranks = sanity_ranks(m, higher_is_better=True)
    assert [r["self_rank"] for r in ranks] == [1, 2, None]  # a ties with c: still first
    assert [r["best_layer"] for r in ranks] == ["a", "a", "b"]
    assert [r["self_first"] for r in ranks] == [True, False, False]
    residual = sanity_ranks(
        LayerMatrix("", "dm_residual_test", ["a", "b", "c"], ["a", "b", "c"], values), False
    )
    assert [r["self_rank"] for r in residual] == [2, 2, None]  # a: only 0.8 is lower
    assert residual[1]["best_value"] == 0.6


def test_heatmap_pngs_decode_with_one_file_per_group(tmp_path):
    rows = _planted("direct") + _planted("task_loss", seed=1) + [{"app": "train", "status": "ok"}]
    paths = stitching_heatmaps(rows, tmp_path)
    assert sorted(p.name for p in paths) == [
        "heatmap_matching=direct.png",
        "heatmap_matching=task_loss.png",
    ]
    for path in paths:
        image = imread(path)  # (h, w, 4)
        assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100
        assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 50  # drawn, not blank


def test_same_layer_sweep_gives_one_profile_png(tmp_path):
    rows = [_row(layer, layer, m, 0.9, 0.1) for m in ("direct", "task_loss") for layer in LAYERS]
    paths = stitching_heatmaps(rows, tmp_path)
    assert [p.name for p in paths] == ["heatmap_same_layer.png"]
    assert imread(paths[0]).shape[2] == 4
    assert sanity_summary(rows, tmp_path) == []  # no front x back matrix, no sanity check


def test_sanity_summary_writes_per_layer_ranks(tmp_path):
    paths = sanity_summary(_planted("direct"), tmp_path)
    assert [p.name for p in paths] == ["sanity.png"] and imread(paths[0]).ndim == 3
    with (tmp_path / "sanity.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    acc = {r["layer"]: r for r in lines if r["metric"] == "stitched_acc"}
    residual = {r["layer"]: r for r in lines if r["metric"] == "dm_residual_test"}
    # accuracy grows with the back layer j: every layer but the last prefers `pool`
    assert [acc[layer]["self_rank"] for layer in LAYERS] == ["4", "", "2", "1"]
    assert acc["conv1"]["best_layer"] == "pool"
    # residual |i - j| is smallest on the diagonal: each layer ranks itself first
    assert all(residual[layer]["self_first"] == "True" for layer in LAYERS if layer != "conv2")


def test_no_stitch_rows_no_figures(tmp_path):
    rows = [{"app": "train", "status": "ok", "config.seed": 0}]
    assert stitching_heatmaps(rows, tmp_path) == [] and sanity_summary(rows, tmp_path) == []
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("metric", ["stitched_acc", "dm_residual_test"])
def test_failed_cell_is_nan_not_zero(metric):
    m = layer_matrix(_planted(), metric)
    assert math.isnan(m.values[1, 1]) and not np.isnan(np.delete(m.values.ravel(), 5)).any()


def test_heatmap_labels_data_driven_scale_and_best_cell_markers(monkeypatch, tmp_path):
    import stitchwork.sweep.heatmaps as heatmaps

    figures = []
    monkeypatch.setattr(heatmaps, "save_figure", lambda fig, path: figures.append(fig) or path)
    values = np.array([[1.4, 2.7, 2.0], [2.5, np.nan, 1.9]])  # task-loss DM residuals
    matrix = heatmaps.LayerMatrix(
        "", "dm_residual_test", ["conv1", "conv2"], ["conv1", "conv2", "conv3"], values
    )
    heatmaps.draw_matrices([matrix], tmp_path / "h.png")
    (fig,) = figures
    ax, bar = fig.axes
    assert ax.images[0].get_clim() == (1.4, 2.7)  # not saturated at 1
    assert ax.get_title() == bar.get_ylabel() == heatmaps.LABELS["dm_residual_test"]
    best = sorted((p.get_y() + 0.5, p.get_x() + 0.5) for p in ax.patches)
    assert best == [(0, 0), (1, 2)]  # lower is better: the row minimum, NaN left out


def test_best_cell_markers_follow_the_direction_of_the_measure():
    """Distances (Procrustes, ...) mark their smallest cell; similarities and accuracies the largest."""
    import matplotlib.pyplot as plt

    from stitchwork.sweep.heatmaps import LayerMatrix, _mark_best

    values = np.array([[0.1, 0.9], [0.8, 0.2]])
    distance = LayerMatrix("procrustes", "procrustes", ["a", "b"], ["a", "b"], values, higher_is_better=False)
    assert not distance.better_higher and LayerMatrix("t", "stitched_acc", ["a"], ["a"], values[:1]).better_higher
    fig, ax = plt.subplots()
    _mark_best(ax, values, distance.better_higher)
    squares = sorted((round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches)
    assert squares == [(0, 0), (1, 1)]  # (column, row) of each row's minimum
    plt.close(fig)
