"""Interpolation, barriers, BN reset and REPAIR, on small trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stitchwork.data import MNIST1D, Digits
from stitchwork.models import MLP, Tiny10
from stitchwork.rebasin.activation_matching import activation_matching
from stitchwork.rebasin.apply import permute_model
from stitchwork.rebasin.bn_reset import reset_bn_stats
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.interpolate import (
    barriers,
    curve_barriers,
    interpolate_models,
    interpolation_curve,
    lambda_grid,
    lerp_state,
)
from stitchwork.rebasin.repair import repair, repair_points
from stitchwork.rebasin.weight_matching import weight_matching
from stitchwork.training import evaluate


def quick_train(model: nn.Module, loader, epochs: int, seed: int, lr: float = 1e-3) -> nn.Module:
    """Train ``model`` in place with Adam (seeded, no Trainer) and return it in eval mode.

    Runs on one thread: these tiny models train several times faster that way on a
    shared two-core machine.
    """
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def mnist1d():
    data = MNIST1D(batch_size=128)
    data.setup()
    return data


@pytest.fixture(scope="module")
def mlps(mnist1d):
    """Two wide MLPs trained from different seeds on mnist1d, and B aligned by weights."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = MLP(mnist1d.input_shape, 10, depth=2, width=256)
        models.append(quick_train(net, mnist1d.loader("train"), epochs=3, seed=seed))
    a, b = models
    spec = spec_for(a)
    aligned = permute_model(b, spec, weight_matching(spec, a.state_dict(), b.state_dict()))
    return spec, a, b, aligned


def test_barrier_definitions_against_hand_computed_values():
    lam = [0.0, 0.25, 0.5, 0.75, 1.0]
    loss = [1.0, 2.5, 2.0, 3.5, 3.0]
    out = barriers(lam, loss)
    assert out["max"] == pytest.approx(3.5 - 2.0)
    assert out["midpoint"] == pytest.approx(2.0 - 2.0)
    assert out["linear"] == pytest.approx(max(2.5 - 1.5, 2.0 - 2.0, 3.5 - 2.5))
    acc = barriers(lam, [0.9, 0.5, 0.6, 0.8, 0.7], higher_is_better=True)
    assert acc["max"] == pytest.approx(0.8 - 0.5)
    assert acc["midpoint"] == pytest.approx(0.8 - 0.6)
    assert acc["linear"] == pytest.approx(0.85 - 0.5)
    flat = barriers(lambda_grid(5), [1.0, 1.5, 2.0, 2.5, 3.0])
    assert flat["linear"] == pytest.approx(0.0) and flat["max"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lambdas"):
        barriers([0.2, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="num_points"):
        lambda_grid(1)


def test_lerp_state_endpoints_and_integer_buffers():
    a, b = Tiny10((1, 8, 8), 3, width=0.25), Tiny10((1, 8, 8), 3, width=0.25)
    b.stages.conv1[1].num_batches_tracked += 5
    mid = lerp_state(a.state_dict(), b.state_dict(), 0.25)
    key = "stages.conv1.0.weight"
    expected = 0.75 * a.state_dict()[key] + 0.25 * b.state_dict()[key]
    assert torch.allclose(mid[key], expected)
    assert mid["stages.conv1.1.num_batches_tracked"] == 0
    one = lerp_state(a.state_dict(), b.state_dict(), 1.0)
    assert torch.equal(one[key], b.state_dict()[key])


def test_curve_endpoints_are_the_models(mnist1d, mlps):
    _, a, b, _ = mlps
    curve = interpolation_curve(a, b, {"test": mnist1d.loader("test")}, num_points=3)
    assert curve["lambda"] == [0.0, 0.5, 1.0]
    assert curve["test"]["loss"][0] == pytest.approx(evaluate(a, mnist1d.loader("test"))["loss"])
    assert curve["test"]["acc"][2] == pytest.approx(evaluate(b, mnist1d.loader("test"))["acc"])


def test_weight_matching_halves_the_test_loss_barrier(mnist1d, mlps):
    _, a, b, aligned = mlps
    test = {"test": mnist1d.loader("test")}
    naive = curve_barriers(interpolation_curve(a, b, test, num_points=5))["test_loss"]
    matched = curve_barriers(interpolation_curve(a, aligned, test, num_points=5))["test_loss"]
    for definition in ("max", "midpoint", "linear"):
        assert matched[definition] <= 0.5 * naive[definition], definition
    assert naive["max"] > 0.1  # the naive barrier is real


def test_activation_matching_also_lowers_the_barrier(mnist1d, mlps):
    spec, a, b, _ = mlps
    found = activation_matching(spec, a, b, mnist1d.loader("train", shuffle=False), max_batches=10)
    test = {"test": mnist1d.loader("test")}
    naive = curve_barriers(interpolation_curve(a, b, test, num_points=3))["test_loss"]
    aligned = permute_model(b, spec, found)
    matched = curve_barriers(interpolation_curve(a, aligned, test, num_points=3))["test_loss"]
    assert matched["midpoint"] <= 0.5 * naive["midpoint"]


def test_repair_is_the_identity_at_an_endpoint(mnist1d, mlps):
    spec, a, _, aligned = mlps
    everything = [next(iter(mnist1d.loader("train", batch_size=10_000, shuffle=False)))]
    repaired = repair(interpolate_models(a, aligned, 0.0), a, aligned, spec, everything, lam=0.0)
    x = everything[0][0][:64]
    with torch.no_grad():
        assert (repaired(x) - a(x)).abs().max().item() <= 1e-4


def test_repair_restores_the_goal_statistics(mnist1d, mlps):
    spec, a, b, _ = mlps
    everything = [next(iter(mnist1d.loader("train", batch_size=10_000, shuffle=False)))]
    merged = interpolate_models(a, b, 0.5)
    repaired = repair(merged, a, b, spec, everything, lam=0.5)
    point = repair_points(repaired, spec)[0]  # first hidden layer: exact after one fold
    assert point == "stages.fc1.1"
    outs = {}
    for name, model in (("a", a), ("b", b), ("r", repaired)):
        with torch.no_grad():
            outs[name] = model.stages.fc1[1](model.stages.fc1[0](everything[0][0])).double()
    goal_std = 0.5 * (outs["a"].std(0, unbiased=False) + outs["b"].std(0, unbiased=False))
    np.testing.assert_allclose(outs["r"].std(0, unbiased=False), goal_std, rtol=1e-4, atol=1e-6)
    assert evaluate(repaired, mnist1d.loader("test"))["loss"] < evaluate(merged, mnist1d.loader("test"))["loss"]


def trained_pair(data, make, epochs: int, lr: float = 1e-3) -> list[nn.Module]:
    """``make(input_shape)`` trained from seeds 0 and 1 by :func:`quick_train` on ``data``."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(quick_train(make(data.input_shape), data.loader("train"), epochs, seed, lr))
    return models


def test_bn_reset_restores_a_merged_bn_model():
    data = Digits(batch_size=64)
    data.setup()
    a, b = trained_pair(data, lambda shape: Tiny10(shape, 10, norm="bn"), epochs=4)
    spec = spec_for(a)
    aligned = permute_model(b, spec, weight_matching(spec, a.state_dict(), b.state_dict()))
    merged = interpolate_models(a, aligned, 0.5)
    before = evaluate(merged, data.loader("test"))["acc"]
    reset_bn_stats(merged, data.loader("train"))
    after = evaluate(merged, data.loader("test"))["acc"]
    assert after > before + 0.1
    assert not merged.training and merged.stages.conv1[1].momentum == 0.1


def test_bn_reset_uses_exact_batch_statistics():
    model = Tiny10((1, 8, 8), 3, width=0.25, norm="bn").eval()
    x = torch.randn(32, 1, 8, 8)
    reset_bn_stats(model, [x[:16], x[16:]])
    conv_out = model.stages.conv1[0](x)
    bn = model.stages.conv1[1]
    assert torch.allclose(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        reset_bn_stats(model, [])
