"""Figure titles name what was compared: models A and B, data, seeds, method, sweep."""

from __future__ import annotations

import numpy as np
import pytest

from stitchwork.sweep.report import flatten
from stitchwork.sweep.titles import comparison_title, config_title

TINY10 = {"_target_": "stitchwork.models.Tiny10", "width": 1.0, "norm": "bn"}
DIGITS = {"_target_": "stitchwork.data.Digits", "image_size": 8, "train_subset": None}
SGD = {"optimizer": "sgd", "epochs": 30, "lr": 0.1}


def _stitch(**changes) -> dict:
    cfg = {"app": "stitch", "sweep_name": "demo", "data": DIGITS, "model_a": TINY10, "model_b": TINY10,
           "recipe_a": SGD, "recipe_b": SGD, "seed_a": 0, "seed_b": 1, "random_a": False, "data_a": {},
           "data_b": {}, "matching": {"_target_": "stitchwork.stitching.matching.direct", "_partial_": True}}  # fmt: skip
    return {**cfg, **changes}


@pytest.mark.parametrize(
    ("changes", "title"),
    [
        ({}, "tiny10/digits seed 0 → seed 1, direct (sweep demo)"),
        ({"seed_b": 0, "sweep_name": "within_network", "matching": {"_target_": "x.task_loss"}},
         "tiny10/digits seed 0 → itself, task_loss (sweep within_network)"),
        ({"model_b": {"_target_": "stitchwork.models.ResNet20", "width": 4, "norm": "bn"}},
         "tiny10/digits seed 0 → resnet20×4/digits seed 1, direct (sweep demo)"),
        ({"model_b": {**TINY10, "norm": "ln"}, "seed_b": 0},
         "tiny10[norm=bn]/digits seed 0 → tiny10[norm=ln]/digits seed 0, direct (sweep demo)"),
        ({"random_a": True}, "random-init tiny10/digits seed 0 → seed 1, direct (sweep demo)"),
        ({"data_a": {"train_subset": 500}},
         "tiny10/digits[train_subset=500] seed 0 → tiny10/digits seed 1, direct (sweep demo)"),
        ({"recipe_a": {**SGD, "ssl": {"temperature": 0.5}, "epochs": 5}},
         "tiny10/digits seed 0 (sgd 5 ep ssl) → seed 1 (sgd 30 ep), direct (sweep demo)"),
        ({"model_a": {"_target_": "stitchwork.models.outside.torchvision_model", "name": "resnet18"},
          "model_b": {"_target_": "stitchwork.models.outside.module_model", "module": {"_target_": "my.Net"}},
          "data": {"_target_": "stitchwork.data.VisionData", "name": "cifar10"}},
         "resnet18/cifar10 seed 0 → Net/cifar10 seed 1, direct (sweep demo)"),
    ],
)  # fmt: skip
def test_stitch_and_compare_titles(changes, title):
    assert config_title(_stitch(**changes)) == title
    compare = {k: v for k, v in _stitch(**changes).items() if k not in ("matching", "random_a")}
    assert config_title(compare) == title.replace(", direct", "").replace(
        ", task_loss", ""
    ).replace("random-init ", "")


def test_rebasin_and_combine_titles():
    cfg = {"app": "rebasin", "sweep_name": "lmc", "model": {"_target_": "stitchwork.models.MLP", "width": 8},
           "data": {"_target_": "stitchwork.data.MNIST1D"}, "seed_a": 0, "seed_b": 1, "post": "bn_reset",
           "matcher": {"_target_": "stitchwork.rebasin.weight_matching.WeightMatcher"}}  # fmt: skip
    assert (
        config_title(cfg)
        == "mlp×8/mnist1d seed 0 ↔ seed 1, weight matching, post bn_reset (sweep lmc)"
    )
    combine = {**cfg, "app": "combine", "mode": "combinability", "seed_c": 2,
               "sampler": {"_target_": "stitchwork.rebasin.combine.Uniform"}}  # fmt: skip
    assert config_title(combine).endswith(
        "post bn_reset, combinability, sampler uniform (sweep lmc)"
    )
    assert "transitivity via seed 2" in config_title({**combine, "mode": "transitivity"})


def test_values_that_differ_within_one_figure_are_joined():
    configs = [flatten(_stitch(seed_b=s)) for s in (1, 2)]
    assert (
        comparison_title(configs)
        == "tiny10/digits seed 0 → seed 1 | tiny10/digits seed 0 → seed 2, direct (sweep demo)"
    )
    assert comparison_title([]) == ""


def test_heatmap_title_cell_values_and_large_grids(monkeypatch, tmp_path):
    import stitchwork.sweep.heatmaps as heatmaps

    figures = []
    monkeypatch.setattr(heatmaps, "save_figure", lambda fig, path: figures.append(fig) or path)
    config = flatten(_stitch(), "config")
    rows = [{"app": "stitch", "status": "ok", "path": f"{i}-{j}", **config, "config.layer_pair.front": f"l{i}",
             "config.layer_pair.back": f"l{j}", "metrics.stitched_acc": 0.5 + 0.01 * i, "metrics.index_a": i,
             "metrics.index_b": j} for i in range(3) for j in range(4)]  # fmt: skip
    heatmaps.stitching_heatmaps(rows, tmp_path, metrics=("stitched_acc",))
    (fig,) = figures
    assert fig._suptitle.get_text() == "tiny10/digits seed 0 → seed 1, direct (sweep demo)"
    ax = fig.axes[0]
    assert len(ax.texts) == 12 and {t.get_fontsize() for t in ax.texts} == {
        7
    }  # every cell, readable type
    assert ax.texts[5].get_text() == "0.51"

    big = heatmaps.LayerMatrix("", "stitched_acc", [f"l{i}" for i in range(20)], [f"l{i}" for i in range(20)],
                               np.full((20, 20), 0.5))  # fmt: skip
    heatmaps.draw_matrices([big], tmp_path / "big.png", "t")
    ax = figures[-1].axes[0]
    assert (
        len(ax.texts) == 0 and "values in results.csv" in ax.get_xlabel()
    )  # 400 cells: values hidden


def test_same_layer_and_extra_group_settings_in_titles(monkeypatch, tmp_path):
    import stitchwork.sweep.heatmaps as heatmaps

    figures = []
    monkeypatch.setattr(heatmaps, "save_figure", lambda fig, path: figures.append(fig) or path)
    rows = []
    for stitch in ("AffineStitch", "DiagonalStitch"):
        config = flatten(
            {**_stitch(), "stitch": {"_target_": f"stitchwork.stitching.layers.{stitch}"}}, "config"
        )
        rows += [{"app": "stitch", "status": "ok", "path": f"{stitch}{i}{j}", **config,
                  "config.layer_pair.front": f"l{i}", "config.layer_pair.back": f"l{j}",
                  "metrics.stitched_acc": 0.5} for i in range(2) for j in range(2)]  # fmt: skip
    heatmaps.stitching_heatmaps(rows, tmp_path, metrics=("stitched_acc",))
    titles = sorted(f._suptitle.get_text() for f in figures)
    assert titles == [f"tiny10/digits seed 0 → seed 1, direct (sweep demo); stitch={s}"
                      for s in ("AffineStitch", "DiagonalStitch")]  # fmt: skip
    figures.clear()
    same = [r for r in rows if r["config.layer_pair.front"] == r["config.layer_pair.back"]]
    heatmaps.stitching_heatmaps(same, tmp_path, metrics=("stitched_acc",))
    assert (
        figures[0]._suptitle.get_text()
        == "same cut point in A and B — tiny10/digits seed 0 → seed 1, direct (sweep demo)"
    )
