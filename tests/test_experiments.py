"""Every experiment preset composes, sweeps what its header says, and runs on tiny settings.

The tiny runs keep each preset's sweep but cut it to one or two layers, one-epoch base models
and one-epoch stitches (the same base models as test_apps_stitch.py, so the session zoo trains
them once). The full presets, unchanged, run under ``-m slow`` and check the expected results
written in their headers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from stitchwork.apps.config import conf_dir, register_resolvers

#: The stitch app's presets: those whose header runs stitchwork-stitch (other apps share the group).
PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml") if "stitchwork-stitch" in p.read_text())
TINY = ["tiny=two_models"]  # conf/tiny/: one-epoch base models on the CPU, after the preset
CONV = [f"conv{i}" for i in range(1, 9)]
#: preset -> (overrides that shrink its sweep, number of jobs left)
SHRINK = {
    "connectivity": (["layer_pair.front=conv8", "matching.epochs=1"], 2),
    "frankenstein": (["layer_pair.front=conv8", "matching_overrides.task_loss.epochs=1",
                      "matching_overrides.direct_then_task.epochs=1"], 3),
    "dm_vs_tlm": (["layer_pair.front=conv7,conv8", "layer_pair.back=conv6,conv8", "seed_b=1",
                   "matching_overrides.task_loss.epochs=1"], 8),
    "more_is_better": (["layer_pair.front=conv8", "front_variant=same,more_width", "matching.epochs=1"], 2),
    "demo": (["layer_pair.fronts=[conv8]", "layer_pair.backs=[conv6,conv8]", "matching_overrides.task_loss.epochs=1"], 2),
    "within_network": (["layer_pair.fronts=[conv2,conv8]", "layer_pair.backs=[conv2,conv8]",
                        "matching_overrides.task_loss.epochs=1"], 2),
    "ssl_vs_supervised": (["layer_pair.front=conv8"], 4),
}  # fmt: skip
#: preset -> (swept key -> values) as the preset's hydra.sweeper.params resolve for tiny10
SWEEPS = {
    "connectivity": {"layer_pair.front": CONV + ["pool"], "random_a": ["false", "true"]},
    "frankenstein": {"matching": ["direct", "task_loss", "direct_then_task"], "layer_pair.front": CONV + ["pool"]},
    "dm_vs_tlm": {"seed_b": ["0", "1"], "matching": ["direct", "task_loss"], "layer_pair.front": CONV,
                  "layer_pair.back": CONV},
    "more_is_better": {"front_variant": ["same", "more_data", "more_width", "more_epochs"],
                       "layer_pair.front": CONV + ["pool"]},
    "demo": {"matching": ["direct", "task_loss"]},
    "within_network": {"matching": ["direct", "task_loss"]},
    "ssl_vs_supervised": {"recipe@recipe_a": ["simclr", "sgd"], "recipe@recipe_b": ["simclr", "sgd"],
                          "layer_pair.front": CONV + ["pool"]},
}  # fmt: skip


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_every_preset_is_covered_here():
    assert set(PRESETS) == set(SHRINK) == set(SWEEPS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_sweeps_every_cut_point(preset):
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("stitch", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params == SWEEPS[preset]
    assert cfg.sweep_name == preset
    header = (conf_dir() / "experiment" / f"{preset}.yaml").read_text().splitlines()
    assert header[0] == "# @package _global_"
    text = "\n".join(line for line in header if line.startswith("#"))
    assert f"experiment={preset}" in text and "Runtime" in text and "Expected" in text
    if preset == "more_is_better":  # A differs from B in exactly one thing per variant
        assert (cfg.model_a.width, cfg.data_a.train_subset, cfg.recipe_a.epochs) == (0.5, 0.25, 10)
        assert (cfg.model_b.width, cfg.data_b.train_subset, cfg.recipe_b.epochs) == (0.5, 0.25, 10)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_on_tiny_settings(preset, run_cli, tmp_path):
    overrides, jobs = SHRINK[preset]
    run_cli("stitch", "--multirun", f"experiment={preset}", *overrides, *TINY)
    records = _results(tmp_path / "multirun" / "stitch" / preset)
    assert len(records) == jobs
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    if preset == "connectivity":
        assert sorted(r["metrics"]["random_a"] for r in records) == [False, True]
    if preset in ("demo", "within_network"):  # one matrix job per method
        assert all(len(r["metrics"]["pairs"]) == len(r["metrics"]["fronts"]) * len(r["metrics"]["backs"])
                   for r in records)  # fmt: skip
    if preset == "within_network":  # A -> A: direct matching is exact on the diagonal
        (direct,) = [r for r in records if r["metrics"]["pairs"][0]["matching"] == "direct"]
        for pair in direct["metrics"]["pairs"]:
            if pair["front"] == pair["back"]:
                assert pair["dm_residual_test"] < 1e-6 and pair["stitched_acc"] == pair["acc_a"] == pair["acc_b"]
    if preset in ("dm_vs_tlm", "demo"):
        run_cli("report", f"dirs=[{tmp_path / 'multirun' / 'stitch' / preset}]")
        report = tmp_path / "multirun" / "stitch" / preset / "report"
        assert {"heatmap_matching=direct.png", "heatmap_matching=task_loss.png", "sanity.png", "sanity.csv",
                "results.csv"} <= {p.name for p in report.iterdir()}  # fmt: skip
        with (report / "sanity.csv").open() as handle:
            sanity = list(csv.DictReader(handle))
        assert {r["layer"] for r in sanity} == {"conv8"}  # the only layer both sides sweep


# -- the full presets, unchanged (tens of minutes on 2 CPU cores) -------------------------
def _sweep(run_cli, tmp_path, preset) -> list[dict]:
    run_cli("stitch", "--multirun", f"experiment={preset}", "trainer.enable_progress_bar=false", timeout=7200)
    records = _results(tmp_path / "multirun" / "stitch" / preset)
    assert records and all(r["status"] == "ok" for r in records)
    return [r["metrics"] | {"config": r["config"]} for r in records]


@pytest.mark.slow
def test_frankenstein_full(run_cli, tmp_path):
    rows = _sweep(run_cli, tmp_path, "frankenstein")
    assert len(rows) == 27
    by = {(r["matching"], r["layer_a"]): r["relative_acc"] for r in rows}
    layers = {layer for _, layer in by}
    # Measured over seeds 0->1 (also with AVX2 kernels forced on an AVX-512 box) and 2->3
    # (2 threads): direct_then_task 0.969-1.008 from conv3 on, 0.955-0.99 at conv1-2 (8x8 maps).
    for layer in layers:
        # least-squares initialisation, then task loss: Csiszárik et al.'s >= 0.95 from conv3
        # on; at conv1-2, 10 epochs on digits leave it near that (0.955 under AVX2 kernels)
        assert by["direct_then_task", layer] >= (0.95 if layer not in ("conv1", "conv2") else 0.92), layer
        # and never clearly worse than task loss from a random start (which fell to 0.59 at
        # conv2; measured difference >= 0.0, equal where both saturate at 1.0)
        assert by["direct_then_task", layer] >= by["task_loss", layer] - 0.02, layer
    assert sum(by["direct_then_task", layer] for layer in layers) / len(layers) >= 0.95  # measured 0.987-0.995


@pytest.mark.slow
def test_connectivity_full(run_cli, tmp_path):
    rows = _sweep(run_cli, tmp_path, "connectivity")
    trained = {r["layer_a"]: r["penalty"] for r in rows if not r["random_a"]}
    random = {r["layer_a"]: r["penalty"] for r in rows if r["random_a"]}
    assert len(trained) == len(random) == 9
    # Spread measured over seeds 0->1 (1 and 2 threads, and with AVX2 kernels forced on an
    # AVX-512 box), 2->3 (1 thread) and 4->5 (2 threads, AVX2); one test image is 0.28 points.
    # Bansal et al. report penalties of about -1 to +5 points across seeds (CIFAR-10). On
    # digits that holds on average over the cut points (measured mean 1.27-2.38) ...
    assert -1.0 <= sum(trained.values()) / len(trained) <= 5.0, trained
    # ... and at every cut point from conv3 on (measured -0.84 to 3.3; the lower bound allows
    # for 359 test images, where beating B by 4 images is already -1.1). conv1 and conv2 are
    # 8x8 maps where a 10-epoch stitch sometimes lags (measured 1.4 to 7.8 points, varying
    # with the CPU's rounding): only "the stitch trains" there, far from chance (+89 points).
    deep = [layer for layer in trained if layer not in ("conv1", "conv2")]
    assert all(-2.0 <= trained[layer] <= 5.0 for layer in deep), trained
    assert all(trained[layer] < 15.0 for layer in ("conv1", "conv2")), trained
    # The random-bottom control: Bansal et al. find its penalty ~0 in the first fifth of the
    # layers (measured gap to the trained bottom 0.3-4.2 points at conv1, 1.7-7.0 at conv2),
    # clearly worse beyond (measured gap >= 4.5 points at every layer from conv3 on), and
    # worst deep (the maximum measured at conv5 or conv8, 16-21 points, vs <= 12 at conv1-2).
    assert all(random[layer] > trained[layer] for layer in deep), (random, trained)
    assert max(random, key=random.get) not in ("conv1", "conv2")


@pytest.mark.slow
def test_dm_vs_tlm_full(run_cli, tmp_path):
    rows = _sweep(run_cli, tmp_path, "dm_vs_tlm")
    assert len(rows) == 256
    within = [r for r in rows if r["config"]["seed_b"] == 0 and r["matching"] == "direct"]
    for row in within:  # DM self-stitch is exact; off the diagonal the residual is larger
        if row["layer_a"] == row["layer_b"]:
            assert row["dm_residual_test"] < 1e-6 and row["stitched_acc"] == row["acc_b"]
        else:
            assert row["dm_residual_test"] > 1e-3
    task_loss = [r for r in rows if r["matching"] == "task_loss"]
    # Balogh & Jelasity: task-loss stitches are out of distribution for B, every one further
    # from B's representation than B's mean is (measured 1.29-3.5; the centred residual, whose
    # denominator is the distance of B from its mean) ...
    assert min(r["dm_residual_centered_test"] for r in task_loss) > 1.0
    # ... and call distant layers similar: A's conv6-8 into B's conv1-5 stitch far better by
    # task loss than by direct matching (measured mean 0.95 vs 0.44 within one network,
    # 0.87 vs 0.23 across seeds)
    for seed_b in (0, 1):
        block = {
            method: [r["stitched_acc"] for r in rows if r["config"]["seed_b"] == seed_b and r["matching"] == method
                     and r["layer_a"] in CONV[5:] and r["layer_b"] in CONV[:5]]
            for method in ("direct", "task_loss")
        }  # fmt: skip
        mean = {method: sum(accs) / len(accs) for method, accs in block.items()}
        assert mean["task_loss"] > mean["direct"] + 0.25, (seed_b, mean)


@pytest.mark.slow
def test_more_is_better_full(run_cli, tmp_path):
    rows = _sweep(run_cli, tmp_path, "more_is_better")
    assert len(rows) == 36
    acc = {(r["config"]["front_variant"], r["layer_a"]): r["stitched_acc"] for r in rows}
    penalty = {(r["config"]["front_variant"], r["layer_a"]): r["penalty"] for r in rows}
    layers = sorted({layer for _, layer in acc})
    deep = ["conv6", "conv7", "conv8", "pool"]  # where the claim held on digits (see the preset)
    for variant in ("more_data", "more_width", "more_epochs"):
        # Bansal et al.: a better front stitched into a weaker B beats the `same` front ...
        # (measured gain over conv6..pool 3.4-6.8 points per variant, seeds 0->1 and 2->3)
        gain = sum(acc[variant, layer] - acc["same", layer] for layer in deep) / len(deep)
        assert gain > 0.01, (variant, gain)
        # ... and B itself (measured mean penalty over conv6..pool -5 to -20 points)
        assert sum(penalty[variant, layer] for layer in deep) / len(deep) < 0.0, variant
    # over every cut point more data still helps on average (measured +5.6 and +6.4 points);
    # no per-layer claim up to conv5, where stitches lose up to 51 points to B and a better
    # front does not always beat `same`
    mean = {v: sum(acc[v, layer] for layer in layers) / len(layers) for v in ("same", "more_data")}
    assert mean["more_data"] > mean["same"], mean


@pytest.mark.slow
def test_ssl_vs_supervised_full(run_cli, tmp_path):
    rows = _sweep(run_cli, tmp_path, "ssl_vs_supervised")
    assert len(rows) == 36
    kind = lambda recipe: "ssl" if recipe.get("ssl") else "sup"  # noqa: E731
    rel = {(kind(r["config"]["recipe_a"]), kind(r["config"]["recipe_b"]), r["layer_a"]): r["relative_acc"]
           for r in rows}  # fmt: skip
    deep = ["conv6", "conv7", "conv8", "pool"]
    mean = {d: sum(rel[(*d, layer)] for layer in deep) / 4 for d in [("ssl", "sup"), ("sup", "ssl"), ("sup", "sup")]}
    # Measured over seeds 0->1 and 2->3 (1 thread): from conv6 on an SSL front costs a supervised
    # back more than a supervised front does (mean 0.92 | 0.86 vs 0.994 | 0.995: gap 0.07-0.13) ...
    assert mean["ssl", "sup"] < mean["sup", "sup"] - 0.03, mean
    # ... a supervised front lifts an SSL back above its own probe (mean 1.057 | 1.098) ...
    assert mean["sup", "ssl"] > 1.02, mean
    # ... and at conv1 the SSL front stitches without a drop (0.983 | 0.992)
    assert rel["ssl", "sup", "conv1"] > 0.95, rel
