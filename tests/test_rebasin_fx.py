"""Specs inferred from a torch.fx trace equal the hand-written ones; blocking ops are named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stitchwork.models import MLP, TVResNet18
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


class FlattenMap(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 3, 3, padding=1), nn.Linear(3 * 16, 2)
        self.input_shape = (1, 4, 4)

    def forward(self, x):
        return self.head(torch.flatten(self.conv(x), 1))


def test_unsupported_op_is_named():
    with pytest.raises(SpecError, match="cat"):
        spec_for(Concat())
    with pytest.raises(SpecError, match="flatten"):
        infer_spec(FlattenMap())
    with pytest.raises(SpecError, match="cannot trace"):
        spec_for(Branchy())
    with pytest.raises(SpecError, match="no hand-written permutation spec"):
        spec_for(Concat())
