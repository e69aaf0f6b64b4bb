"""Stitch layers: shapes, resize, direct self-fit is the identity, StitchedModel freezing, errors."""

import pytest
import torch

from stitchwork.cut import UnknownCutPointError
from stitchwork.models import MLP, ResNet20, Tiny10
from stitchwork.stitching import (
    BUILTIN_STITCHES,
    AffineStitch,
    FlattenLinearStitch,
    IdentityStitch,
    LowRankStitch,
    PermutationStitch,
    StitchShapeError,
    build_stitched,
    moments_of,
    resolve_matching,
    resolve_stitch,
)

CONV, FLAT = (6, 4, 4), (6,)
OPTIONS = {"low_rank": {"rank": 6}}


@pytest.mark.parametrize("kind", sorted(BUILTIN_STITCHES))
@pytest.mark.parametrize("shape", [CONV, FLAT])
def test_direct_self_fit_reproduces_the_input(kind, shape):
    layer = BUILTIN_STITCHES[kind](shape, shape, **OPTIONS.get(kind, {})).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(64, *shape, generator=g) * 2 + 0.5)
    fitter = layer.fitter()
    if fitter is not None:
        layer.load_weights(fitter(moments_of(layer.rows(x), layer.rows(x)), 0.0))
    assert layer(x).shape == x.shape
    torch.testing.assert_close(layer(x), x, atol=1e-4, rtol=1e-4)


def test_resize_maps_conv_maps_of_different_size():
    with pytest.raises(StitchShapeError, match=r"\(16, 8, 8\).*\(32, 4, 4\).*stitch.resize=true"):
        AffineStitch((16, 8, 8), (32, 4, 4))
    layer = AffineStitch((16, 8, 8), (32, 4, 4), resize=True)
    x = torch.randn(3, 16, 8, 8)
    assert layer(x).shape == (3, 32, 4, 4)
    up = AffineStitch((32, 4, 4), (16, 8, 8), resize=True)
    assert up(torch.randn(3, 32, 4, 4)).shape == (3, 16, 8, 8)
    # the resize is bilinear, before the map: a constant map stays constant
    ident = IdentityStitch((4, 2, 2), (4, 6, 6), resize=True)
    assert torch.allclose(ident(torch.full((1, 4, 2, 2), 3.0)), torch.full((1, 4, 6, 6), 3.0))


def test_conv_to_flat_needs_a_flatten_stitch():
    with pytest.raises(StitchShapeError, match=r"conv activation \(6, 4, 4\) to a flat activation \(10,\).*flatten_linear"):
        AffineStitch(CONV, (10,))
    layer = FlattenLinearStitch(CONV, (10,))
    assert layer(torch.randn(2, *CONV)).shape == (2, 10)
    assert FlattenLinearStitch((10,), CONV)(torch.randn(2, 10)).shape == (2, *CONV)


@pytest.mark.parametrize("cls", [PermutationStitch, IdentityStitch, BUILTIN_STITCHES["diagonal"]])
def test_one_to_one_stitches_need_equal_widths(cls):
    with pytest.raises(StitchShapeError, match=r"equal widths but A has 8 channels \(8, 4, 4\) and B has 6"):
        cls((8, 4, 4), CONV)


def test_rank_larger_than_the_width_is_an_error():
    with pytest.raises(ValueError, match=r"rank 9 .* 8 -> 6 .* min\(8, 6\) = 6"):
        LowRankStitch((8, 4, 4), CONV, rank=9)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown stitch 'afine'; valid: affine, bn_affine"):
        resolve_stitch("afine")
    with pytest.raises(ValueError, match="unknown matching 'dm'; valid: direct, task_loss"):
        resolve_matching("dm")


def _nets():
    torch.manual_seed(0)
    return Tiny10((1, 8, 8), 10), ResNet20((1, 8, 8), 10, width=0.5), Tiny10((1, 8, 8), 10, width=2.0)


def test_stitched_model_shapes_across_widths_and_architectures():
    tiny, resnet, wide = _nets()
    x = torch.randn(5, 1, 8, 8)
    for a, cut_a, b, cut_b in [(tiny, "conv4", resnet, "layer2_1"), (wide, "conv5", tiny, "conv5"),
                               (resnet, "layer3_0", wide, "conv7"), (tiny, "pool", wide, "pool")]:
        stitched = build_stitched(a, cut_a, b, cut_b, AffineStitch)
        assert stitched(x).shape == (5, 10)
    assert build_stitched(wide, "conv5", tiny, "conv5", AffineStitch).stitch.weight.shape == (32, 64)


def test_unknown_cut_point_and_different_inputs_are_errors():
    tiny, resnet, _ = _nets()
    with pytest.raises(UnknownCutPointError, match="unknown cut point 'conv9'.*valid cut points: conv1"):
        build_stitched(tiny, "conv9", resnet, "stem", AffineStitch)
    mlp = MLP((40,), 10)
    with pytest.raises(StitchShapeError, match=r"different inputs: \(1, 8, 8\) and \(40,\)"):
        build_stitched(tiny, "conv2", mlp, "fc1", AffineStitch)
    with pytest.raises(StitchShapeError, match="choose stitch=flatten_linear"):
        build_stitched(tiny, "conv4", tiny, "pool", AffineStitch)


def test_donors_are_frozen_and_stay_in_eval_mode():
    tiny, resnet, _ = _nets()
    stitched = build_stitched(tiny, "conv3", resnet, "layer2_0", AffineStitch)
    stitched.train()
    assert stitched.stitch.training
    for donor in (stitched.front, stitched.back, stitched.target_front):
        assert not any(m.training for m in donor.modules())
        assert not any(p.requires_grad for p in donor.parameters())
    assert {id(p) for p in stitched.trainable_parameters()} == {id(p) for p in stitched.stitch.parameters()}
