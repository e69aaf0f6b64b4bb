"""Permutation specs fit the state dicts, and permuted models compute the same function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stitchwork.models import MLP, ResNet20, Tiny10, vgg11, vgg16
from stitchwork.rebasin.apply import (
    apply_permutation,
    compose_permutations,
    invert_permutation,
    load_permutation,
    permute_model,
    random_permutation,
    save_permutation,
)
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.spec import SpecError, build_spec, dense

IMAGE = (3, 8, 8)


def zoo_models() -> dict[str, nn.Module]:
    """Every hand-specified architecture and norm, small enough for CPU tests."""
    models: dict[str, nn.Module] = {"mlp": MLP((40,), 10, depth=3, width=24)}
    for norm in ("bn", "ln", "none"):
        models[f"tiny10-{norm}"] = Tiny10(IMAGE, 10, width=0.5, norm=norm)
        models[f"vgg11-{norm}"] = vgg11(IMAGE, 10, width=0.125, norm=norm)
        models[f"vgg16-{norm}"] = vgg16(IMAGE, 10, width=0.0625, norm=norm)
        models[f"resnet20-{norm}"] = ResNet20(IMAGE, 10, width=1, norm=norm)
    return models


ZOO = zoo_models()


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and norm affines, so that permuting them matters."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            m.weight.data = 0.5 + torch.rand(m.weight.shape, generator=gen)
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.1
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.randn(m.running_mean.shape, generator=gen) * 0.1
            m.running_var = 0.5 + torch.rand(m.running_var.shape, generator=gen)
    return model.eval()


@pytest.mark.parametrize("name", list(ZOO))
def test_permuted_model_is_functionally_identical(name):
    torch.manual_seed(0)
    model = randomise_norms(ZOO[name])
    spec = spec_for(model)
    perm = random_permutation(spec, seed=1)
    permuted = permute_model(model, spec, perm).eval()
    x = torch.randn(16, *model.input_shape)
    with torch.no_grad():
        diff = (model(x) - permuted(x)).abs().max().item()
    assert diff <= 1e-5
    # the permutation really moved weights (a non-identity permutation)
    state, moved = model.state_dict(), permuted.state_dict()
    assert any(not torch.equal(state[k], moved[k]) for k in state if state[k].dim() > 0)


def test_bn_running_stats_are_permuted_but_not_matched():
    model = randomise_norms(ZOO["resnet20-bn"])
    spec = spec_for(model)
    key = "stages.layer1_0.norm1.running_mean"
    assert key in spec.buffers and "stages.layer1_0.norm1.weight" not in spec.buffers
    perm = random_permutation(spec, seed=3)
    permuted = apply_permutation(spec, perm, model.state_dict())
    assert torch.equal(permuted[key], model.state_dict()[key][perm["layer1_0.inner"]])


def test_resnet20_spec_shares_one_permutation_per_stream():
    spec = spec_for(ZOO["resnet20-bn"])
    assert sorted(p for p in spec.perms if p.startswith("stage")) == ["stage1", "stage2", "stage3"]
    stage2 = {key for key, axis in spec.perm_to_axes["stage2"] if axis == 0}
    assert "stages.layer2_0.shortcut.0.weight" in stage2
    assert {f"stages.layer2_{b}.conv2.weight" for b in range(3)} <= stage2
    assert len([p for p in spec.perms if p.endswith(".inner")]) == 9


def test_inverse_and_composition():
    model = ZOO["mlp"]
    spec = spec_for(model)
    perm, other = random_permutation(spec, 1), random_permutation(spec, 2)
    state = model.state_dict()
    back = apply_permutation(spec, invert_permutation(perm), apply_permutation(spec, perm, state))
    assert all(torch.equal(back[k], state[k]) for k in state)
    twice = apply_permutation(spec, other, apply_permutation(spec, perm, state))
    once = apply_permutation(spec, compose_permutations(perm, other), state)
    assert all(torch.equal(twice[k], once[k]) for k in state)


def test_permutation_round_trips_through_a_file(tmp_path):
    spec = spec_for(ZOO["tiny10-bn"])
    perm = random_permutation(spec, 5)
    loaded = load_permutation(save_permutation(perm, tmp_path / "perm.pt"), spec)
    assert all(torch.equal(perm[p], loaded[p]) for p in perm)


def test_spec_validation_names_the_problem():
    model = MLP((4,), 2, depth=1, width=3)
    with pytest.raises(SpecError, match="keys without axes"):
        build_spec(dense("stages.fc1.1", "h", None), model)
    bad = dense("stages.fc1.1", "h", None) | {"stages.head.weight": (None, None), "stages.head.bias": (None, None)}
    with pytest.raises(SpecError, match="stages.head.bias"):
        build_spec(bad, model)
    sizes = dense("stages.fc1.1", "h", None) | dense("stages.head", "h", "h")
    with pytest.raises(SpecError, match="size"):
        build_spec(sizes, model)


def test_blocked_axes_are_validated():
    model = MLP((4,), 2, depth=1, width=3)  # stages.head.weight: (2, 3)
    axes = dense("stages.fc1.1", "h", None) | dense("stages.head", None, "h")
    with pytest.raises(SpecError, match="not a multiple of its block 2"):
        build_spec(axes, model, blocks={("stages.head.weight", 1): 2})
    with pytest.raises(SpecError, match="no permutation acts on"):
        build_spec(axes, model, blocks={("stages.head.weight", 0): 2})
    assert dict(build_spec(axes, model, blocks={("stages.head.weight", 1): 1}).blocks) == {}


def test_bad_permutation_is_rejected():
    spec = spec_for(ZOO["mlp"])
    perm = random_permutation(spec, 0)
    perm["fc1"] = torch.zeros_like(perm["fc1"])
    with pytest.raises(SpecError, match="fc1"):
        apply_permutation(spec, perm, ZOO["mlp"].state_dict())
