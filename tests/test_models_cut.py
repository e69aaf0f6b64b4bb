"""Every model splits at every cut point into a front and back that compose exactly."""

from __future__ import annotations

import pytest
import torch
import torchvision

from stitchwork.cut import UnknownCutPointError, cut_point_shapes, split
from stitchwork.models import (
    MLP,
    ResNet20,
    Tiny10,
    TVResNet18,
    torchvision_model,
    vgg11,
    vgg16,
    vit_tiny,
)

MODELS = {
    "mlp": lambda: MLP((1, 8, 8), 10, depth=3, width=32),
    "tiny10-bn": lambda: Tiny10((1, 8, 8), 10),
    "tiny10-ln": lambda: Tiny10((1, 8, 8), 10, norm="ln"),
    "tiny10-none": lambda: Tiny10((1, 8, 8), 10, norm="none", width=0.5),
    "resnet20-bn": lambda: ResNet20((3, 16, 16), 10),
    "resnet20-ln": lambda: ResNet20((3, 16, 16), 10, norm="ln", width=2),
    "resnet20-none": lambda: ResNet20((3, 16, 16), 10, norm="none"),
    "vgg11-bn": lambda: vgg11((1, 8, 8), 10, width=0.25),
    "vgg16-ln": lambda: vgg16((3, 32, 32), 10, width=0.125, norm="ln"),
    "tv_resnet18": lambda: TVResNet18((3, 32, 32), 10, small_input=True),
    # outside models, split by torch.fx at module paths (tests/test_models_outside.py)
    "torchvision-resnet18": lambda: torchvision_model((3, 32, 32), 10, "resnet18"),
    "torchvision-resnet18-digits": lambda: torchvision_model((1, 8, 8), 10, "resnet18"),
    "torchvision-mobilenet_v3_small": lambda: torchvision_model((3, 32, 32), 10, "mobilenet_v3_small"),
    "vit_tiny": lambda: vit_tiny((1, 16, 16), 10),
    "timm-resnet18": lambda: _timm("resnet18"),
    "timm-vit_tiny_patch16": lambda: _timm("vit_tiny_patch16_224", img_size=16, patch_size=4),
}


def _timm(name, **kwargs):
    pytest.importorskip("timm", reason="the timm extra is not installed (pip install 'stitchwork[timm]')")
    from stitchwork.models.outside import timm_model

    return timm_model((3, 16, 16), 10, name, **kwargs)


def _randomise_bn(model):
    """Give BatchNorm non-trivial statistics so that eval mode is really exercised."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_front_back_compose_exactly_at_every_cut_point(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    _randomise_bn(model)
    model.eval()
    x = torch.randn(4, *model.input_shape)
    with torch.no_grad():
        expected = model(x)
        assert len(model.cut_points) >= 3
        for point in model.cut_points:
            front, back = split(model, point)
            assert torch.equal(back(front(x)), expected), point


def test_cut_points_cover_stem_blocks_and_pool():
    assert ResNet20((3, 32, 32), 10).cut_points == [
        "stem", "layer1_0", "layer1_1", "layer1_2", "layer2_0", "layer2_1", "layer2_2",
        "layer3_0", "layer3_1", "layer3_2", "pool",
    ]
    assert Tiny10((1, 8, 8), 10).cut_points == [f"conv{i}" for i in range(1, 9)] + ["pool"]
    assert len(vgg16((3, 32, 32), 10, width=0.125).cut_points) == 14


def test_shapes_of_cut_points():
    shapes = cut_point_shapes(ResNet20((3, 32, 32), 10, width=2))
    assert shapes["stem"] == (32, 32, 32)
    assert shapes["layer2_0"] == (64, 16, 16)
    assert shapes["layer3_2"] == (128, 8, 8)
    assert shapes["pool"] == (128,)
    assert shapes["logits"] == (10,)


def test_front_and_back_share_the_model_parameters():
    model = Tiny10((1, 8, 8), 10)
    front, back = split(model, "conv4")
    assert front.conv1[0].weight is model.stages["conv1"][0].weight
    n_front = sum(p.numel() for p in front.parameters())
    n_back = sum(p.numel() for p in back.parameters())
    assert n_front + n_back == sum(p.numel() for p in model.parameters())


def test_unknown_cut_point_lists_the_valid_ones():
    with pytest.raises(UnknownCutPointError, match=r"'conv9'.*valid cut points: conv1, conv2.*pool"):
        split(Tiny10((1, 8, 8), 10), "conv9")
    with pytest.raises(UnknownCutPointError, match="head"):  # the classifier is not a cut point
        split(Tiny10((1, 8, 8), 10), "head")


@pytest.mark.parametrize("width", [0, -1.0])
def test_non_positive_width_is_refused(width):
    with pytest.raises(ValueError, match=f"width must be positive, got {width!r}"):
        ResNet20((3, 32, 32), 10, width=width)
    with pytest.raises(ValueError, match="width must be positive"):
        MLP((40,), 10, width=width)


def test_unknown_norm_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown norm 'batch'; valid: bn, ln, none"):
        Tiny10((1, 8, 8), 10, norm="batch")


def test_conv_model_on_flat_data_is_refused():
    with pytest.raises(ValueError, match=r"tiny10 needs image input.*\(40,\).*model=mlp"):
        Tiny10((40,), 10)


def test_tv_resnet18_loads_torchvision_weights_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    model = TVResNet18((3, 64, 64), 10, weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_tv_resnet18_weights_refuse_one_channel_data(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="take 3-channel input.*data has 1 channels"):
        TVResNet18((1, 28, 28), 10, weights=str(path))


def test_tv_resnet18_unreadable_weights(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read tv_resnet18 weights"):
        TVResNet18((3, 32, 32), 10, weights=str(path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TVResNet18((3, 32, 32), 10, weights=str(tmp_path / "missing.pt"))
