"""Post-processing a merged model by name (the apps' ``post`` / ``merge`` option)."""

from __future__ import annotations

import copy

import pytest
import torch

from stitchwork.models import Tiny10
from stitchwork.rebasin.builders import spec_for
from stitchwork.rebasin.post import post_processor


def test_post_processors_by_name():
    torch.manual_seed(0)
    a, b = Tiny10((1, 8, 8), 10, width=0.5), Tiny10((1, 8, 8), 10, width=0.5)
    spec = spec_for(a)
    data = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    assert post_processor("none", a, b, spec, data) is None

    merged = copy.deepcopy(a)
    reset = post_processor("bn_reset", a, b, spec, data)(merged, 0.5)
    # the exact mean of the first BatchNorm's inputs over all batches
    with torch.no_grad():
        inputs = torch.cat([a.stages["conv1"][0](x) for x, _ in data])
    bn = reset.stages["conv1"][1]
    assert torch.allclose(bn.running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-5)

    repaired = post_processor("repair", a, b, spec, data)(copy.deepcopy(a), 0.5)
    assert repaired.state_dict().keys() == a.state_dict().keys()

    with pytest.raises(ValueError, match=r"unknown post-process 'bn'; valid: none, bn_reset, repair"):
        post_processor("bn", a, b, spec, data)
