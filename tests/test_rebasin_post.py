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


def test_post_configs_build_the_built_in_post_processors():
    from stitchwork.apps.config import conf_dir
    from stitchwork.apps.endpoints import build_post
    from stitchwork.rebasin import PostProcessor
    from stitchwork.rebasin.post import POST_PROCESSES

    names = sorted(p.stem for p in (conf_dir() / "rebasin" / "post").glob("*.yaml"))
    assert names == sorted(POST_PROCESSES)
    for name in names:
        post = build_post(name, post_batches=2)
        assert isinstance(post, PostProcessor) and type(post) is POST_PROCESSES[name] and post.max_batches == 2
    with pytest.raises(ValueError, match=r"unknown post-process 'bn'; valid names: bn_reset, none, repair"):
        build_post("bn")


def test_align_and_merge_equal_the_steps_they_stand_for():
    from stitchwork.rebasin import BNReset, WeightMatcher, align, merge
    from stitchwork.rebasin.apply import permute_model
    from stitchwork.rebasin.bn_reset import reset_bn_stats
    from stitchwork.rebasin.interpolate import interpolate_models
    from stitchwork.rebasin.weight_matching import weight_matching

    torch.manual_seed(1)
    a, b = Tiny10((1, 8, 8), 10, width=0.5).eval(), Tiny10((1, 8, 8), 10, width=0.5).eval()
    data = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)) for _ in range(2)]
    alignment = align(a, b, WeightMatcher(max_sweeps=5))
    spec = spec_for(a)
    perm = weight_matching(spec, a.state_dict(), b.state_dict(), max_sweeps=5)
    assert alignment.spec.perms == spec.perms
    assert all(torch.equal(alignment.perm[p], perm[p]) for p in spec.perms)
    x = data[0][0]
    with torch.no_grad():
        torch.testing.assert_close(alignment.aligned(x), b(x), rtol=1e-5, atol=1e-5)
    merged = merge(a, alignment, 0.5, BNReset(), data)
    want = reset_bn_stats(interpolate_models(a, permute_model(b, spec, perm), 0.5), data)
    for key, value in want.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[key], value)
    plain = merge(a, alignment, 0.25)
    for key, value in interpolate_models(a, alignment.aligned, 0.25).state_dict().items():
        torch.testing.assert_close(plain.state_dict()[key], value)
