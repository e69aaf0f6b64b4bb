"""On a CUDA device every part of the library runs there and gives the CPU's answers.

Each test makes the same public call with the models on the CPU and on ``DEVICE`` and
compares the results (skipped, with the reason printed, where there is no CUDA device).

Tolerances. cuDNN convolutions in float32 use TF32 by default (a 10-bit mantissa, ~1e-3
relative); the ``_ieee_float32`` fixture turns that off, so both devices compute in IEEE
float32 and differ only in summation order (a few ulp, ~1e-7 relative, per activation).
As a proxy for that difference, multiplying every weight of the trained digits models
below by ``1 + U(-1e-6, 1e-6)`` (a larger change) moved, on the CPU: the direct-matching
stitch weights by at most 5e-6 (relative, Frobenius), every stitch metric by at most 7e-7
(relative) and every all-pairs similarity entry by at most 1.2e-6 (absolute). The bounds
below leave a margin of 15-20x over that. Accuracies are counts of argmax decisions: a
near-tie may flip, so they may differ by one example.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stitchwork.training.fit as fit_module
from stitchwork.apps.common import resolve_device
from stitchwork.data import Digits
from stitchwork.models import Tiny10
from stitchwork.rebasin.activation_matching import ActivationMatcher
from stitchwork.rebasin.apply import permute_model
from stitchwork.rebasin.bn_reset import reset_bn_stats
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.combine import Uniform, combine_states, sample_lambdas
from stitchwork.rebasin.combine_eval import evaluate_combinations
from stitchwork.rebasin.interpolate import curve_barriers, interpolate_models, interpolation_curve
from stitchwork.rebasin.weight_matching import WeightMatcher, weight_matching
from stitchwork.similarity.all_pairs import all_pairs
from stitchwork.stitching import stitch
from stitchwork.training import TrainRecipe, evaluate, fit_classifier
from stitchwork.training.evaluate import model_device
from stitchwork.visualize import MaximizeSettings, maximize, score_images, top_examples

from .test_rebasin_matching import MODELS, assert_recovers, planted

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEVICE = torch.device("cuda")
ACCELERATOR = "gpu" if DEVICE.type == "cuda" else "cpu"
DEVICES = (torch.device("cpu"), DEVICE)
WEIGHT_RTOL = 1e-4  # fitted stitch weights (relative, Frobenius)
METRIC_RTOL = 2e-5  # continuous stitch metrics, losses, BN statistics (relative)
SIMILARITY_ATOL = 2e-5  # similarity matrix entries (absolute)


@pytest.fixture(autouse=True)
def _ieee_float32():
    """IEEE float32 convolutions on CUDA (not TF32) for the test, as on the CPU."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(scope="module")
def digits():
    data = Digits(batch_size=64)
    data.setup()
    return data


@pytest.fixture(scope="module")
def trained_pair(digits):
    """Two Tiny-10s (width 0.5, BatchNorm) trained 3 epochs on digits from seeds 0 and 1 (~97%)."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = Tiny10(digits.input_shape, 10, width=0.5).to(DEVICE).train()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(3):
            for x, y in digits.loader("train"):
                opt.zero_grad()
                F.cross_entropy(net(x.to(DEVICE)), y.to(DEVICE)).backward()
                opt.step()
        models.append(net.cpu().eval())
    return tuple(models)


@pytest.fixture(scope="module")
def aligned_pair(trained_pair):
    """``(spec, A, B permuted to A by weight matching)``, on the CPU."""
    a, b = trained_pair
    spec = spec_for(a)
    perm = weight_matching(spec, a.state_dict(), b.state_dict(), seed=0)
    return spec, a, permute_model(b, spec, {p: v.cpu() for p, v in perm.items()})


class DeviceLog(L.Callback):
    """Where the LightningModule's parameters and each training batch were, step by step."""

    def __init__(self):
        self.steps, self.devices = 0, set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps += 1
        self.devices |= {p.device.type for p in pl_module.parameters()}
        self.devices |= {t.device.type for t in batch if isinstance(t, torch.Tensor)}


def on(device: torch.device, *models: nn.Module) -> bool:
    """Every parameter and buffer of every model is on ``device``."""
    return {t.device.type for m in models for t in (*m.parameters(), *m.buffers())} == {device.type}


def copies(device: torch.device, *models: nn.Module) -> list[nn.Module]:
    return [copy.deepcopy(m).to(device) for m in models]


def one_example(data) -> float:
    """An accuracy step of one test example (plus rounding slack)."""
    return 1.0 / len(data.test_set) + 1e-9


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-30))


def test_base_training_through_lightning_runs_on_cuda():
    data = Digits(batch_size=64, train_subset=800)
    torch.manual_seed(0)
    net = Tiny10(data.input_shape, 10, width=0.5).to(DEVICE)
    recipe = TrainRecipe(optimizer="adam", lr=3e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                         schedule="constant", epochs=2, batch_size=32)  # fmt: skip
    log = DeviceLog()
    options = {"accelerator": ACCELERATOR, "devices": 1, "enable_progress_bar": False, "callbacks": [log]}
    metrics = fit_classifier(net, data, recipe, seed=0, trainer_options=options)
    assert log.steps == 2 * math.ceil(800 / 32) and log.devices == {DEVICE.type}
    assert on(DEVICE, net)  # trained in place: left where it came from
    assert all(math.isfinite(metrics[f"{s}_{m}"]) for s in ("train", "val", "test") for m in ("acc", "loss"))
    assert metrics["test_acc"] > 0.7, metrics  # 0.955 on the CPU; chance is 0.1
    loader = data.loader("test", shuffle=False)
    again = evaluate(net, loader)  # what fit_classifier measured, on the same device
    assert again["acc"] == pytest.approx(metrics["test_acc"], abs=one_example(data))
    assert again["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    on_cpu = evaluate(copy.deepcopy(net).cpu(), loader)
    assert on_cpu["acc"] == pytest.approx(metrics["test_acc"], abs=one_example(data))
    assert on_cpu["loss"] == pytest.approx(metrics["test_loss"], rel=METRIC_RTOL)


def test_fit_classifier_measures_on_the_training_device_and_returns_the_model_where_it_was(monkeypatch):
    measured_on = []

    def spy(model, loader, device=None):
        measured_on.append(model_device(model).type)
        return evaluate(model, loader, device)

    monkeypatch.setattr(fit_module, "evaluate", spy)
    data = Digits(batch_size=64, train_subset=400)
    torch.manual_seed(0)
    net = Tiny10(data.input_shape, 10, width=0.5)  # on the CPU, as the zoo builds it
    recipe = TrainRecipe(optimizer="adam", lr=3e-3, momentum=0.0, nesterov=False, weight_decay=0.0,
                         schedule="constant", epochs=1, batch_size=32)  # fmt: skip
    options = {"accelerator": ACCELERATOR, "devices": 1, "enable_progress_bar": False}
    metrics = fit_classifier(net, data, recipe, seed=0, trainer_options=options)
    assert measured_on == [DEVICE.type] * 3  # train, val and test, where it trained
    assert on(torch.device("cpu"), net)  # back where it came from (the zoo stores it from there)
    again = evaluate(net, data.loader("test", shuffle=False))
    assert again["acc"] == pytest.approx(metrics["test_acc"], abs=one_example(data))
    assert again["loss"] == pytest.approx(metrics["test_loss"], rel=METRIC_RTOL)


STITCH_ACCURACIES = ("stitched_acc", "acc_a", "acc_b", "agreement_b")
STITCH_CONTINUOUS = ("dm_residual_fit", "dm_residual_test", "dm_residual_centered_fit", "dm_residual_centered_test",
                     "cka_stitched_target", "kl_b", "ood_score")


@pytest.mark.parametrize(("kind", "options"), [
    ("affine", {}), ("bn_affine", {}), ("low_rank", {"rank": 4}), ("orthogonal", {}), ("permutation", {}),
])  # fmt: skip
def test_direct_stitching_on_cuda_gives_the_cpu_fit_and_metrics(trained_pair, digits, kind, options):
    x = next(iter(digits.loader("test", shuffle=False)))[0]  # (64, 1, 8, 8)
    fits = []
    for device in DEVICES:
        a, b = copies(device, *trained_pair)
        stitched, record = stitch(a, "conv4", b, "conv4", digits, stitch=kind, stitch_options=options,
                                  matching="direct")  # fmt: skip
        assert on(device, stitched, a, b)
        with torch.no_grad():
            mapped = stitched.stitch(stitched.front(x.to(device)))  # (64, 16, 4, 4)
        fits.append((stitched.stitch, mapped, record))
    (layer_cpu, mapped_cpu, cpu), (layer, mapped, got) = fits
    # the map itself (low-rank factors and SVD signs may differ; their product may not)
    assert relative_error(layer.weight_matrix(), layer_cpu.weight_matrix()) <= WEIGHT_RTOL
    assert relative_error(mapped, mapped_cpu) <= WEIGHT_RTOL
    if kind == "permutation":
        assert torch.equal(layer.index.cpu(), layer_cpu.index)
    assert got["fit_rows"] == cpu["fit_rows"] == len(digits.train_set) * 16  # 4x4 positions each
    for key in STITCH_ACCURACIES:
        assert got[key] == pytest.approx(cpu[key], abs=one_example(digits)), key
    for key in STITCH_CONTINUOUS:
        assert got[key] == pytest.approx(cpu[key], rel=METRIC_RTOL), key
    if kind in ("affine", "bn_affine"):
        assert got["stitched_acc"] > 0.4  # a real fit, not two equal failures: 0.70 on the CPU, chance 0.1


@pytest.mark.parametrize("cache", [True, False])
def test_task_loss_stitching_trains_on_cuda(trained_pair, digits, cache):
    a, b = copies(DEVICE, *trained_pair)
    log = DeviceLog()
    stitched, record = stitch(
        a, "conv4", b, "conv4", digits, matching="task_loss",
        matching_options={"epochs": 1, "lr": 1e-2, "batch_size": 32, "schedule": "constant", "cache": cache},
        trainer_options={"accelerator": ACCELERATOR, "devices": 1, "callbacks": [log]},
    )  # fmt: skip
    assert log.steps == math.ceil(len(digits.train_set) / 32) and log.devices == {DEVICE.type}
    assert record["cached"] is cache and len(record["history"]) == 1
    assert on(DEVICE, stitched, a, b)  # the donors are not left on the CPU by Lightning's teardown
    epoch = record["history"][0]
    assert math.isfinite(epoch["train_loss"]) and math.isfinite(epoch["val_acc"])
    assert all(math.isfinite(record[k]) for k in (*STITCH_ACCURACIES, *STITCH_CONTINUOUS))
    assert record["stitched_acc"] > 0.4, record["stitched_acc"]  # 0.74 on the CPU; chance is 0.1


def _on_device(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(DEVICE) for k, v in state.items()}


def _cpu(perm: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {p: v.cpu() for p, v in perm.items()}


@pytest.mark.parametrize("name", ["mlp", "tiny10-bn", "resnet20-bn", "torchvision-vgg"])
def test_weight_matching_on_cuda_recovers_the_planted_permutation(name):
    spec, model_a, model_b, pi = planted(name)
    found = _cpu(weight_matching(spec, _on_device(model_a.state_dict()), _on_device(model_b.state_dict()),
                                 max_sweeps=100, seed=0))  # fmt: skip
    assert_recovers(spec, model_a, model_b, pi, found)
    via_matcher = _cpu(WeightMatcher(seed=0)(*copies(DEVICE, model_a, model_b), spec))
    assert all(torch.equal(via_matcher[p], found[p]) for p in spec.perms)


@pytest.mark.parametrize("name", ["mlp", "tiny10-bn"])
def test_weight_matching_on_cuda_finds_the_cpu_permutation_of_unrelated_models(name):
    torch.manual_seed(3)
    model_a, model_b = MODELS[name]().eval(), MODELS[name]().eval()
    spec = spec_for(model_a)
    cpu = weight_matching(spec, model_a.state_dict(), model_b.state_dict(), max_sweeps=100, seed=2)
    got = weight_matching(spec, _on_device(model_a.state_dict()), _on_device(model_b.state_dict()),
                          max_sweeps=100, seed=2)  # fmt: skip
    assert all(torch.equal(got[p].cpu(), cpu[p].cpu()) for p in spec.perms)


@pytest.mark.parametrize(("name", "randomise"), [("mlp", True), ("tiny10-bn", False), ("resnet20-bn", True)])
def test_activation_matching_on_cuda_recovers_the_planted_permutation(name, randomise):
    spec, model_a, model_b, pi = planted(name, randomise)
    gen = torch.Generator().manual_seed(0)
    batches = 8 if name == "mlp" else 3
    data = [2 * torch.randn(64, *model_a.input_shape, generator=gen) for _ in range(batches)]  # on the CPU
    found = _cpu(ActivationMatcher("corr")(*copies(DEVICE, model_a, model_b), spec, data))
    assert_recovers(spec, model_a, model_b, pi, found)
    cpu = ActivationMatcher("corr")(model_a, model_b, spec, data)
    assert all(torch.equal(found[p], cpu[p]) for p in spec.perms)


def test_interpolation_and_bn_reset_on_cuda_give_the_cpu_curve(aligned_pair, digits):
    _, a, aligned = aligned_pair
    train = digits.loader("train", shuffle=False)  # the same batches on both devices
    test = {"test": digits.loader("test", shuffle=False)}
    merged, curves = [], []
    for device in DEVICES:
        a_d, b_d = copies(device, a, aligned)
        mid = interpolate_models(a_d, b_d, 0.5)
        assert on(device, mid)
        reset_bn_stats(mid, train)
        assert on(device, mid)
        merged.append({k: v.cpu() for k, v in mid.state_dict().items()})
        curves.append(interpolation_curve(a_d, b_d, test, num_points=3,
                                          post=lambda m, lam: reset_bn_stats(m, train)))  # fmt: skip
    (cpu_state, state), (cpu_curve, curve) = merged, curves
    for key, ref in cpu_state.items():
        if ref.is_floating_point():
            assert relative_error(state[key], ref) <= METRIC_RTOL, key
        else:
            assert torch.equal(state[key], ref), key
    np.testing.assert_allclose(curve["test"]["loss"], cpu_curve["test"]["loss"], rtol=METRIC_RTOL)
    np.testing.assert_allclose(curve["test"]["acc"], cpu_curve["test"]["acc"], atol=one_example(digits))
    assert min(curve["test"]["acc"][0], curve["test"]["acc"][2]) > 0.9  # the endpoints are A and B
    assert all(math.isfinite(v) for v in curve_barriers(curve)["test_loss"].values())


def test_evaluate_combinations_on_cuda_gives_the_cpu_metrics(aligned_pair, digits):
    _, a, aligned = aligned_pair
    sa, sb = a.state_dict(), aligned.state_dict()
    states = [combine_states(sa, sb, lam) for lam in sample_lambdas(Uniform(), sa, 4, seed=0)] + [sa, sb]
    loader = digits.loader("test", shuffle=False)
    results = []
    for device in DEVICES:
        a_d, b_d = copies(device, a, aligned)
        results.append(evaluate_combinations(copy.deepcopy(a_d), states, loader, a_d, b_d, chunk_size=4))
        assert on(device, a_d, b_d)
    cpu, got = (r["per_sample"] for r in results)
    np.testing.assert_allclose(got["loss"], cpu["loss"], rtol=METRIC_RTOL)
    for key in ("kl_a", "kl_b"):  # 0 at the endpoints: absolute slack there
        np.testing.assert_allclose(got[key], cpu[key], rtol=METRIC_RTOL, atol=1e-6)
    for key in ("acc", "agree_a", "agree_b"):
        np.testing.assert_allclose(got[key], cpu[key], atol=one_example(digits))
    for key in ("dist_a", "dist_b"):  # the same CPU states against the same weights
        np.testing.assert_allclose(got[key], cpu[key], rtol=1e-12)
    assert results[1]["pairwise_agreement"] == pytest.approx(results[0]["pairwise_agreement"],
                                                             abs=2 * one_example(digits))  # fmt: skip
    assert got["acc"][-2] == pytest.approx(evaluate(copies(DEVICE, a)[0], loader)["acc"])


ALL_PAIRS_MEASURES = ["linear_cka", "linear_cka_debiased", "rbf_cka", "cca_mean_rho", "svcca", "pwcca",
                      "procrustes", "rsa_spearman"]  # fmt: skip
CUTS = ["conv2", "conv5", "conv8", "pool"]


def test_all_pairs_on_cuda_gives_the_cpu_matrices(trained_pair, digits):
    a, b = trained_pair
    loader = digits.loader("test", shuffle=False)
    options = {"cut_points_a": CUTS, "cut_points_b": CUTS, "measures": ALL_PAIRS_MEASURES,
               "spatial": "avgpool", "n_subset": 200, "seed": 0}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CCA on dead (constant) channels warns on both devices
        cpu = all_pairs(a, b, loader, **options)
        a_d, b_d = copies(DEVICE, a, b)
        for pair in ((a_d, b_d), (a_d, b)):  # both on the device, and one on each
            got = all_pairs(*pair, loader, **options)
            assert (got.rows, got.cols, got.n_examples) == (cpu.rows, cpu.cols, cpu.n_examples)
            assert torch.equal(got.subset, cpu.subset)
            for name in ALL_PAIRS_MEASURES:
                assert got[name].device.type == "cpu"
                diff = (got[name] - cpu[name]).abs().max().item()
                assert diff <= SIMILARITY_ATOL, (name, diff)
        assert on(DEVICE, a_d, b_d) and on(torch.device("cpu"), a, b)
        self_cpu = all_pairs(a, None, loader, CUTS, CUTS, ["linear_cka"], spatial="avgpool")["linear_cka"]
        self_dev = all_pairs(a_d, None, loader, CUTS, CUTS, ["linear_cka"], spatial="avgpool")["linear_cka"]
    assert torch.allclose(self_dev.diagonal(), torch.ones(len(CUTS), dtype=torch.float64), atol=1e-12)
    assert (self_dev - self_cpu).abs().max().item() <= SIMILARITY_ATOL


def test_feature_visualization_on_cuda(trained_pair, digits):
    channels = [0, 5, 11]
    settings = MaximizeSettings(steps=20, seed=0)
    runs, tops = [], []
    for device in DEVICES:
        (model,) = copies(device, trained_pair[0])
        vis = maximize(model, "conv4", channels, settings)
        # images and scores come back on the CPU, at the model's own input shape
        assert vis.images.device.type == vis.activations.device.type == "cpu"
        assert vis.images.shape == (3, *model.input_shape) and torch.isfinite(vis.images).all()
        assert on(device, model) and all(p.grad is None for p in model.parameters())
        assert torch.allclose(score_images(model, "conv4", vis.images, channels), vis.activations,
                              rtol=1e-5, atol=1e-6)  # fmt: skip
        assert vis.history[-1] > vis.history[0]  # the optimizer raised the channels
        runs.append(vis)
        tops.append(top_examples(model, "conv4", channels, digits.loader("test", shuffle=False), k=5))
    # step 0 scores the same initial images under the same random transforms on both devices
    assert runs[1].history[0] == pytest.approx(runs[0].history[0], rel=METRIC_RTOL)  # about 0.46
    assert torch.equal(tops[1].indices, tops[0].indices) and torch.equal(tops[1].images, tops[0].images)
    assert torch.allclose(tops[1].scores, tops[0].scores, rtol=METRIC_RTOL, atol=1e-6)


# The apps end to end with device=cuda (subprocesses; NVIDIA_TF32_OVERRIDE=0 makes their
# cuDNN convolutions IEEE float32, as the fixture above does in-process). The base models
# are trained like ``trained_pair`` (97-98% test accuracy on the CPU), once, into the
# session's zoo; the bounds are 2-50x wider than those above, which were measured in-process.
APP_DEVICE = DEVICE.type
APP_ENV = {"NVIDIA_TF32_OVERRIDE": "0"}
APP_TINY = ["trainer.enable_progress_bar=false", "model_a.width=0.5", "model_b.width=0.5",
            "recipe@recipe_a=adam", "recipe@recipe_b=adam", "recipe_a.lr=3e-3", "recipe_b.lr=3e-3",
            "recipe_a.batch_size=32", "recipe_b.batch_size=32", "recipe_a.epochs=3", "recipe_b.epochs=3"]


def _record(root: Path) -> dict:
    (path,) = root.rglob("results.json")
    return json.loads(path.read_text())


def _run_on_both(run_cli, root: Path, app: str, *overrides: str) -> tuple[dict, dict]:
    """The job's record with ``device=cuda``, then rerun (``force=true``) with ``device=cpu``."""
    run_cli(app, *overrides, f"device={APP_DEVICE}", env=APP_ENV)
    on_device = _record(root)
    run_cli(app, *overrides, "device=cpu", "force=true", env=APP_ENV)
    on_cpu = _record(root)  # the same folder: device is not part of the job identity
    assert on_device["identity"] == on_cpu["identity"]
    assert on_device["status"] == on_cpu["status"] == "ok", (on_device.get("error"), on_cpu.get("error"))
    assert on_device["metrics"]["device"] == str(resolve_device(APP_DEVICE))  # e.g. cuda:0
    assert on_cpu["metrics"]["device"] == "cpu"
    return on_device["metrics"], on_cpu["metrics"]


def test_stitch_app_runs_on_cuda_and_gives_the_cpu_answers(run_cli, tmp_path):
    data = Digits()
    data.setup()
    got, cpu = _run_on_both(run_cli, tmp_path / "outputs", "stitch", "layer_pair.front=conv4", *APP_TINY)
    assert min(cpu["acc_a"], cpu["acc_b"]) > 0.9 and cpu["stitched_acc"] > 0.4  # 0.97, 0.98, 0.64
    for key in STITCH_ACCURACIES:
        assert got[key] == pytest.approx(cpu[key], abs=2 * one_example(data)), key
    for key in STITCH_CONTINUOUS:
        assert got[key] == pytest.approx(cpu[key], rel=1e-3), key
    # task-loss stitch training (Lightning) on the job's device
    (tmp_path / "task_loss").mkdir()
    run_cli("stitch", "layer_pair.front=conv4", "matching=task_loss", "matching.epochs=1", "matching.lr=1e-2",
            "matching.schedule=constant", "matching.batch_size=32", *APP_TINY, f"device={APP_DEVICE}",
            env=APP_ENV, cwd=tmp_path / "task_loss")  # fmt: skip
    trained = _record(tmp_path / "task_loss")
    assert trained["status"] == "ok", trained.get("error")
    assert trained["metrics"]["device"].startswith(APP_DEVICE) and len(trained["metrics"]["history"]) == 1
    assert math.isfinite(trained["metrics"]["history"][0]["train_loss"])
    assert trained["metrics"]["stitched_acc"] > 0.5, trained["metrics"]["stitched_acc"]  # 0.79 on the CPU


def test_compare_app_runs_on_cuda_and_gives_the_cpu_matrices(run_cli, tmp_path):
    got, cpu = _run_on_both(run_cli, tmp_path / "outputs", "compare", *APP_TINY, "similarity.n_subset=120",
                            "cut_points_a=[conv2,conv5,pool]", "cut_points_b=[conv2,conv5,pool]")  # fmt: skip
    assert sorted(got["matrices"]) == sorted(cpu["matrices"]) and len(cpu["matrices"]) == 5
    for name, matrix in cpu["matrices"].items():
        diff = (torch.tensor(got["matrices"][name]) - torch.tensor(matrix)).abs().max().item()
        assert diff <= 1e-4, (name, diff)
