"""Specs inferred from a torch.fx trace equal the hand-written ones, permute flattened maps in
blocks and keep the function of torchvision models; blocking ops are named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stitchwork.models import MLP, TVResNet18
from stitchwork.models.outside import torchvision_model
from stitchwork.rebasin.activation_matching import activation_matching
from stitchwork.rebasin.apply import invert_permutation, permute_model, random_permutation
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.fx_spec import infer_spec
from stitchwork.rebasin.spec import SpecError

from .test_rebasin_spec import ZOO, randomise_norms


@pytest.mark.parametrize("name", list(ZOO))
def test_fx_spec_equals_hand_written(name):
    model = ZOO[name]
    hand, inferred = spec_for(model), infer_spec(model)
    assert inferred.equivalent(hand)
    assert inferred.buffers == hand.buffers
    assert set(inferred.activations) == set(inferred.perms)


def test_equivalence_is_not_vacuous():
    mlp = ZOO["mlp"]
    deeper = MLP((40,), 10, depth=4, width=24)
    assert not spec_for(mlp).equivalent(infer_spec(deeper))


def test_fx_spec_of_torchvision_resnet18_keeps_the_function():
    torch.manual_seed(0)
    model = randomise_norms(TVResNet18((3, 16, 16), 10, small_input=True))
    spec = spec_for(model)  # no hand-written spec: inferred by fx
    assert len(spec.perms) == 4 + 8  # one per stream of each stage, one inner per block
    permuted = permute_model(model, spec, random_permutation(spec, 1)).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert (model(x) - permuted(x)).abs().max().item() <= 1e-5


def test_activation_matching_with_an_inferred_spec():
    torch.manual_seed(0)
    model = MLP((20,), 5, depth=2, width=16).eval()
    spec = infer_spec(model)
    pi = random_permutation(spec, 4)
    data = [2 * torch.randn(128, 20) for _ in range(4)]
    found = activation_matching(spec, model, permute_model(model, spec, pi), data)
    assert all(torch.equal(found[p], invert_permutation(pi)[p]) for p in spec.perms)


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(6, 2)
        self.input_shape = (4,)

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.input_shape = (4,)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class ConvFlattenLinear(nn.Module):
    """conv -> BN -> ReLU -> flatten of a 3 x 4 x 4 map -> Linear -> ReLU -> Linear (test only)."""

    def __init__(self, channels: int = 3, hidden: int = 5, view: bool = False):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.fc, self.head = nn.Linear(channels * 16, hidden), nn.Linear(hidden, 2)
        self.input_shape, self.view = (1, 4, 4), view

    def forward(self, x):
        x = torch.relu(self.norm(self.conv(x)))
        x = x.view(x.size(0), -1) if self.view else torch.flatten(x, 1)
        return self.head(torch.relu(self.fc(x)))


class FlattenSamples(ConvFlattenLinear):
    def forward(self, x):
        return torch.flatten(self.conv(x), 0)


@pytest.mark.parametrize("view", [False, True])
def test_a_flattened_map_is_permuted_in_blocks_of_its_positions(view):
    model = randomise_norms(ConvFlattenLinear(view=view))
    spec = infer_spec(model)
    assert sorted(spec.perms) == ["conv", "fc"] and dict(spec.blocks) == {("fc.weight", 1): 16}
    assert spec.activations["conv"] == ("norm",)  # the flattened vector is no activation point
    perm = random_permutation(spec, 2)
    permuted = permute_model(model, spec, perm).eval()
    # channel-major flatten: column c*16 + s of fc.weight reads channel c at position s
    blocks = model.fc.weight.detach().reshape(5, 3, 16)[perm["fc"]][:, perm["conv"]].reshape(5, 48)
    assert torch.equal(permuted.fc.weight, blocks)
    x = torch.randn(8, 1, 4, 4)
    with torch.no_grad():
        assert (model(x) - permuted(x)).abs().max().item() <= 1e-6


def test_fx_specs_of_torchvision_vgg16_bn_and_mobilenet_v3_small_keep_the_function():
    """vgg16_bn: 13 conv permutations, the first classifier Linear reads the 512 x 7 x 7 map in
    blocks of 49; mobilenet_v3_small: depthwise convs and squeeze-excitation products join groups."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for name, perms in (("vgg16_bn", 13 + 2), ("mobilenet_v3_small", 27)):
        model = randomise_norms(torchvision_model((3, 32, 32), 10, name))
        spec = spec_for(model)
        assert len(spec.perms) == perms
        if name == "vgg16_bn":
            assert dict(spec.blocks) == {("stages.classifier_0.classifier.0.weight", 1): 49}
        permuted = permute_model(model, spec, random_permutation(spec, 1)).eval()
        with torch.no_grad():
            out = model(x)
            assert (out - permuted(x)).abs().max().item() <= 1e-5 * (1 + out.abs().max().item()), name
        del model, permuted


def test_unsupported_op_is_named():
    with pytest.raises(SpecError, match="cat"):
        spec_for(Concat())
    with pytest.raises(SpecError, match="flattening dims 0..3 .* mixes units with samples at node 'flatten'"):
        infer_spec(FlattenSamples())
    with pytest.raises(SpecError, match="cannot trace"):
        spec_for(Branchy())
    with pytest.raises(SpecError, match="no hand-written permutation spec"):
        spec_for(Concat())
    # torchvision architectures the inference cannot permute: a Fire module's concatenation
    with pytest.raises(SpecError, match=r"fx inference failed: .*function cat has no permutation rule at node 'cat'"):
        spec_for(torchvision_model((3, 32, 32), 10, "squeezenet1_1"))
