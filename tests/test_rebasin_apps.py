"""stitchwork-rebasin and stitchwork-combine end to end (subprocesses), and their presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stitchwork.apps.common import resolve_device
from stitchwork.rebasin.apply import load_permutation

TINY_MLP = ["tiny=mlp"]  # conf/tiny/: a 2 x 16 MLP on mnist1d, one Adam epoch on the CPU
TINY_CNN = ["tiny=cnn"]  # conf/tiny/: Tiny-10 x 0.25 on digits, one Adam epoch on the CPU


def records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("results.json"))]


def test_rebasin_app_writes_barriers_permutation_and_merge(run_cli, tmp_path):
    run_cli("rebasin", *TINY_MLP, "num_points=3", "post=repair", "post_batches=2", "device=cpu")
    (record,) = records(tmp_path / "outputs" / "rebasin")
    assert record["status"] == "ok" and record["metrics"]["device"] == "cpu"
    metrics = record["metrics"]
    for key in ("barrier_test_loss_max", "barrier_test_loss_midpoint", "barrier_train_acc_linear"):
        assert isinstance(metrics[key], float)
    assert metrics["curve"]["lambda"] == [0.0, 0.5, 1.0]
    job_dir = next((tmp_path / "outputs" / "rebasin").rglob("results.json")).parent
    perm = load_permutation(job_dir / "permutation.pt")
    assert sorted(perm) == ["fc1", "fc2"] and sorted(perm["fc1"].tolist()) == list(range(16))
    merged = torch.load(job_dir / "merged.pt", weights_only=True)
    assert merged["stages.fc1.1.weight"].shape == (16, 40)
    assert (job_dir / "interpolation.png").stat().st_size > 0


#: a user's conv -> BN -> ReLU -> pool -> flatten -> Linear network on digits (model=module):
#: the first Linear reads the 8 x 4 x 4 map, so its input axis is permuted in blocks of 16
CONV_FLATTEN_LINEAR = "model.module={_target_:torch.nn.Sequential,_args_:[" + ",".join([
    "{_target_:torch.nn.Conv2d,in_channels:3,out_channels:8,kernel_size:3,padding:1}",
    "{_target_:torch.nn.BatchNorm2d,num_features:8}", "{_target_:torch.nn.ReLU}",
    "{_target_:torch.nn.MaxPool2d,kernel_size:2}", "{_target_:torch.nn.Flatten}",
    "{_target_:torch.nn.Linear,in_features:128,out_features:32}", "{_target_:torch.nn.ReLU}",
    "{_target_:torch.nn.Linear,in_features:32,out_features:10}",
]) + "]}"  # fmt: skip


def assert_aligned_endpoints_keep_their_function(metrics: dict) -> None:
    """With post=none the curve's ends are A and the permuted B: the originals' loss, to float noise."""
    for split in ("train", "test"):
        curve = metrics["curve"][split]
        ends = [curve["loss"][0], curve["loss"][-1]]
        assert ends == pytest.approx(curve["original_ends"]["loss"], abs=1e-5), split


def test_rebasin_app_on_a_module_that_flattens_a_conv_map(run_cli, tmp_path):
    run_cli("rebasin", "tiny=one_model", "model=module", CONV_FLATTEN_LINEAR, "num_points=3", "post=none",
            "device=cpu")  # fmt: skip
    (record,) = records(tmp_path / "outputs" / "rebasin")
    assert record["status"] == "ok" and record["metrics"]["num_perms"] == 2
    assert_aligned_endpoints_keep_their_function(record["metrics"])
    job_dir = next((tmp_path / "outputs" / "rebasin").rglob("results.json")).parent
    perm = load_permutation(job_dir / "permutation.pt")
    assert {p: len(v) for p, v in perm.items()} == {"stages.0.stage.0": 8, "stages.5.5": 32}
    assert torch.load(job_dir / "merged.pt", weights_only=True)["stages.5.5.weight"].shape == (32, 128)


@pytest.mark.slow
def test_rebasin_app_on_torchvision_vgg11_bn(run_cli, tmp_path):
    """Two random-init vgg11_bn (recipe=pretrained: never trained) on digits at 32 px, aligned by
    activation matching (weight matching's 25088 x 4096 classifier products take minutes on a
    CPU; test_rebasin_matching recovers a planted permutation of torchvision's VGG class).
    About 70 s of CPU time (4.4 min wall on a loaded 2-core box), 4 GB of memory, 1.5 GB of files."""
    run_cli("rebasin", "tiny=one_model", "model=torchvision", "model.name=vgg11_bn", "data.image_size=32",
            "data.train_subset=256", "recipe=pretrained", "rebasin/matcher@matcher=activation",
            "matcher.max_batches=2", "num_points=2", "post=none", "device=cpu")  # fmt: skip
    (record,) = records(tmp_path / "outputs" / "rebasin")
    assert record["status"] == "ok" and record["metrics"]["num_perms"] == 8 + 2
    assert_aligned_endpoints_keep_their_function(record["metrics"])


def test_combine_app_combinability(run_cli, tmp_path):
    run_cli("combine", *TINY_CNN, "k=3", "combine/sampler@sampler=per_neuron", "post=bn_reset", "post_batches=2")
    (record,) = records(tmp_path / "outputs" / "combine")
    assert record["status"] == "ok"
    combo = record["metrics"]
    assert combo["device"] == str(resolve_device("auto"))  # the default
    assert len(combo["per_sample"]["aligned"]["loss"]) == 3 and len(combo["per_sample"]["naive"]["acc"]) == 3
    assert 0.0 <= combo["aligned_agree_a_mean"] <= 1.0 and combo["naive_dist_a_min"] > 0


@pytest.mark.slow
def test_combine_app_transitivity_and_robustness(run_cli, tmp_path):
    run_cli("combine", *TINY_CNN, "mode=transitivity", "num_points=3", "device=cpu")
    run_cli("combine", *TINY_CNN, "mode=robustness", "k=2", "num_points=3", "qs=[0,1]", "device=cpu")
    by_mode = {r["config"]["mode"]: r for r in records(tmp_path / "outputs" / "combine")}
    assert all(r["status"] == "ok" for r in by_mode.values()) and len(by_mode) == 2
    assert all(r["metrics"]["device"] == "cpu" for r in by_mode.values())
    trans = by_mode["transitivity"]["metrics"]
    assert {"via_c", "naive", "direct"} <= set(trans["curves"])
    robust = by_mode["robustness"]["metrics"]
    assert [row["q"] for row in robust["rows"]] == [0.0, 1.0]


def compose(app: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from stitchwork.apps.config import conf_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=app, overrides=overrides)


@pytest.mark.parametrize(("override", "message"), [
    ("k=0", r"^k must be an integer >= 1, got 0$"),
    ("k=-2", r"^k must be an integer >= 1, got -2$"),
    ("mode=sideways", "^unknown mode 'sideways'; valid: combinability, transitivity, robustness$"),
    ("qs=[0.5,1.5]", r"^qs\[1\] must be a number in \[0, 1\], got 1.5$"),
    ("combine/sampler@sampler=vicinity sampler.eps=-1", "^sampler.eps must be a finite number >= 0, got -1$"),
    ("combine/sampler@sampler=bernoulli sampler.p=2", r"^sampler.p must be a number in \[0, 1\], got 2$"),
])
def test_combine_app_bad_input(override, message):
    from stitchwork.apps.combine import check_settings

    with pytest.raises(ValueError, match=message):
        check_settings(compose("combine", override.split()))


@pytest.mark.parametrize(("app", "preset"), [
    ("rebasin", "lmc_width"), ("combine", "combinability"), ("combine", "transitivity"), ("combine", "robustness"),
])
def test_presets_compose_and_instantiate(app, preset):
    from hydra.utils import instantiate

    from stitchwork.rebasin.matching import Matcher

    cfg = compose(app, [f"experiment={preset}"])
    # adapted to the CPU: MLPs on embedded mnist1d (the paper-scale command is in each header)
    assert cfg.sweep_name == preset and cfg.model._target_ == "stitchwork.models.MLP"
    assert cfg.data._target_ == "stitchwork.data.MNIST1D"
    assert isinstance(instantiate(cfg.matcher), Matcher)
    if app == "combine":
        from stitchwork.apps.combine import check_settings

        check_settings(cfg)


@pytest.mark.parametrize("group", ["rebasin/matcher", "combine/sampler"])
def test_every_group_option_instantiates(group):
    from hydra.utils import instantiate

    from stitchwork.apps.config import conf_dir
    from stitchwork.rebasin.combine import LambdaSampler
    from stitchwork.rebasin.matching import Matcher

    kind = Matcher if group.endswith("matcher") else LambdaSampler
    key = group.rsplit("/", 1)[-1]
    for option in sorted((conf_dir() / group).glob("*.yaml")):
        if option.stem == "saved":  # needs a path; covered by test_saved_permutation_is_reused
            continue
        cfg = compose("combine", [f"{group}@{key}={option.stem}"])
        assert isinstance(instantiate(cfg[key]), kind), option.stem


@pytest.mark.slow
@pytest.mark.parametrize(("app", "preset", "tiny"), [
    ("rebasin", "lmc_width", [*TINY_MLP, "model.width=8", "num_points=3", "post_batches=2"]),
    ("combine", "combinability", [*TINY_CNN, "k=2"]),
    ("combine", "transitivity", [*TINY_CNN, "num_points=3"]),
    ("combine", "robustness", [*TINY_CNN, "k=2", "num_points=3", "qs=[0,0.5]"]),
])
def test_presets_run_as_tiny_multiruns(run_cli, tmp_path, app, preset, tiny):
    run_cli(app, "--multirun", f"experiment={preset}", *tiny)
    found = records(tmp_path / "multirun" / app / preset)
    expected = {"lmc_width": 3, "combinability": 6, "transitivity": 2, "robustness": 2}[preset]
    assert len(found) == expected and all(r["status"] == "ok" for r in found)
