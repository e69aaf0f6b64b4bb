"""The stitch app end to end (subprocesses), its config checks and the cut-point resolver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from stitchwork.apps.common import build_data, resolve_device
from stitchwork.apps.config import conf_dir, register_resolvers
from stitchwork.apps.stitch import check_pair, matching_config, side_data_config
from stitchwork.cut import UnknownCutPointError
from stitchwork.stitching import StitchShapeError, resolve_stitch

# Base models of one epoch: enough to stitch, quick to train (the zoo keeps them per session).
TINY = ["tiny=two_models"]  # conf/tiny/: one-epoch base models on the CPU
#: The metrics that issue 3 asks every stitching job to report.
METRIC_KEYS = {"acc_a", "acc_b", "stitched_acc", "relative_acc", "penalty", "dm_residual_fit",
               "dm_residual_test", "dm_residual_centered_fit", "dm_residual_centered_test",
               "cka_stitched_target", "agreement_b", "kl_b", "ood_score",
               "history", "wall_time_s", "layer_a", "layer_b", "width_a", "width_b", "matching",
               "stitch", "index_a", "index_b", "zoo_key_a", "zoo_key_b"}  # fmt: skip
TINY10_CUTS = "conv1,conv2,conv3,conv4,conv5,conv6,conv7,conv8,pool"


def _results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def _compose(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("stitch", overrides=list(overrides), return_hydra_config=True)


def test_multirun_records_bad_cut_point_and_nan_loss_runs_siblings_and_skips_on_rerun(run_cli, tmp_path):
    args = ["--multirun", "layer_pair.front=conv4,conv99", "matching=task_loss", "matching.epochs=2",
            "matching.lr=1e-3,inf", "sweep_name=t", *TINY]  # fmt: skip
    proc = run_cli("stitch", *args, check=False)
    assert proc.returncode != 0  # Hydra reports the failures after the sweep
    records = _results(tmp_path / "multirun" / "stitch" / "t")
    assert len(records) == 4
    assert {r["metrics"]["device"] for r in records} == {str(resolve_device("auto"))}  # failed ones too
    lr = lambda r: r["config"]["matching"]["lr"] or float("inf")  # noqa: E731  (results store inf as null)
    by_case = {(r["config"]["layer_pair"]["front"], lr(r)): r for r in records}
    ok = by_case[("conv4", 1e-3)]
    assert ok["status"] == "ok", ok.get("error")
    m = ok["metrics"]
    assert METRIC_KEYS <= set(m)
    assert m["layer_a"] == m["layer_b"] == "conv4" and m["width_a"] == m["width_b"] == 32
    assert (m["index_a"], m["index_b"]) == (3, 3) and m["matching"] == "task_loss"
    assert m["relative_acc"] == pytest.approx(m["stitched_acc"] / m["acc_b"])
    assert m["penalty"] == pytest.approx(100 * (m["acc_b"] - m["stitched_acc"]))
    assert [e["epoch"] for e in m["history"]] == [0, 1]
    assert m["zoo_key_a"] != m["zoo_key_b"]  # two seeds, two base models
    bad = by_case[("conv99", 1e-3)]  # an unknown cut point fails with the valid names
    assert bad["status"] == "failed" and "UnknownCutPointError" in bad["error"]
    assert "conv99" in bad["error"] and TINY10_CUTS.replace(",", ", ") in bad["error"]
    for front in ("conv4", "conv99"):  # lr=inf is refused before any training (NaN losses: test_stitching_models)
        inf = by_case[(front, float("inf"))]
        assert inf["status"] == "failed" and "matching.lr must be a positive finite number, got inf" in inf["error"]
    assert "did not finish" not in proc.stderr and "conv99" in proc.stderr  # the sweep summary

    again = run_cli("stitch", *args, check=False)
    assert again.stdout.count("skipping stitch job") + again.stderr.count("skipping stitch job") == 1
    assert {r["identity"]: r["started"] for r in _results(tmp_path / "multirun")}[ok["identity"]] == ok["started"]


def test_direct_self_stitch_through_the_app_is_exact(run_cli, tmp_path):
    # ridge 0: the exact least-squares answer W = I. With the default relative ridge 1e-6 the
    # residual is ridge-sized and set by the smallest channel variances (measured 5e-11 to
    # 1.9e-9 over seeds 0-2, at most ridge/4 = 2.5e-7 in theory): too close to 1e-8.
    run_cli("stitch", "layer_pair.front=conv5", "seed_b=0", "device=cpu", "matching.ridge=0", *TINY)
    (record,) = _results(tmp_path / "outputs")
    m = record["metrics"]
    assert record["status"] == "ok" and m["zoo_key_a"] == m["zoo_key_b"] and m["device"] == "cpu"
    assert m["stitched_acc"] == m["acc_a"] == m["acc_b"] and m["agreement_b"] == 1.0
    assert m["dm_residual_fit"] < 1e-8 and m["dm_residual_test"] < 1e-8
    assert m["cka_stitched_target"] == pytest.approx(1.0, abs=1e-8)


def _resolve(cfg, expression: str):
    with open_dict(cfg):
        cfg.probe = expression
    return cfg.probe


def test_cut_point_resolver_lists_every_cut_point_or_a_kind():
    cfg = _compose("model@model_b=resnet20", "layer_pair.front=conv1")
    assert _resolve(cfg, "${sw_cut_points:model_a}") == TINY10_CUTS
    conv = _resolve(cfg, "${sw_cut_points:model_b,conv}").split(",")
    assert conv[0] == "stem" and conv[-1] == "layer3_2" and len(conv) == 10
    assert _resolve(cfg, "${sw_cut_points:model_b,flat}") == "pool"
    # what the presets put in hydra.sweeper.params resolves in the composed config
    swept = _compose("experiment=dm_vs_tlm").hydra.sweeper.params
    assert swept["layer_pair.front"] == swept["layer_pair.back"] == TINY10_CUTS.removesuffix(",pool")
    with pytest.raises(ValueError, match="unknown cut point kind 'dense'; valid: all, conv, flat"):
        _resolve(cfg, "${sw_cut_points:model_a,dense}")
    with pytest.raises(ValueError, match="no model config 'model_c'"):
        _resolve(cfg, "${sw_cut_points:model_c}")


def test_bad_layer_pairs_fail_before_any_training():
    cfg = _compose("layer_pair=default", "layer_pair.front=conv2", "layer_pair.back=conv3")
    data = build_data(cfg.data)
    with pytest.raises(StitchShapeError, match="set stitch.resize=true"):  # 16x8x8 -> 32x4x4
        check_pair(cfg, data, resolve_stitch(_instantiate(cfg.stitch)))
    cfg = _compose("layer_pair.front=conv9")
    with pytest.raises(UnknownCutPointError, match="unknown cut point 'conv9'.*conv1, conv2"):
        check_pair(cfg, data, resolve_stitch(_instantiate(cfg.stitch)))
    cfg = _compose("layer_pair.front=conv4", "stitch=permutation", "model@model_b=tiny10", "model_b.width=2")
    with pytest.raises(StitchShapeError, match="equal widths but A has 32 channels"):
        check_pair(cfg, data, resolve_stitch(_instantiate(cfg.stitch)))
    cfg = _compose("layer_pair=default", "layer_pair.front=pool", "layer_pair.back=conv8")
    with pytest.raises(StitchShapeError, match="flatten_linear"):  # flat -> conv needs a flatten stitch
        check_pair(cfg, data, resolve_stitch(_instantiate(cfg.stitch)))


def test_side_data_and_per_method_matching_overrides():
    cfg = _compose("layer_pair.front=conv4", "+data_b.train_subset=0.25", "matching=task_loss",
                   "+matching_overrides.task_loss.epochs=3", "+matching_overrides.direct.ridge=0.5")  # fmt: skip
    assert side_data_config(cfg, "a") is cfg.data
    assert side_data_config(cfg, "b").train_subset == 0.25 and cfg.data.train_subset is None
    assert matching_config(cfg).epochs == 3 and "ridge" in matching_config(cfg)
    direct = _compose("layer_pair.front=conv4", "+matching_overrides.task_loss.epochs=3")
    assert "epochs" not in matching_config(direct)  # direct takes no epochs


def _instantiate(node):
    from hydra.utils import instantiate

    return instantiate(node)
