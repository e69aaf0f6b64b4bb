"""VGG-11 / VGG-16 for small images, with a width multiplier and a choice of norm."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .base import check_positive, require_image_input, scaled
from .norm import check_norm, conv_norm
from .tiny10 import ConvChain

#: Conv widths per block; each block ends in a 2×2 max-pool.
VGG_CONFIGS = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}


class VGG(ConvChain):
    """VGG conv stack (3×3 conv → norm → ReLU), GAP, one linear head.

    A max-pool closes each block while the feature map is at least 2 px wide, so
    8×8 digits and 32×32 CIFAR both work. Cut points: ``conv1`` … ``convK`` (the pool,
    where there is one, belongs to the conv that precedes it) and ``pool``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        variant: str = "vgg16",
        width: float = 1.0,
        norm: str = "bn",
    ):
        if variant not in VGG_CONFIGS:
            raise ValueError(f"unknown VGG variant {variant!r}; valid: {', '.join(VGG_CONFIGS)}")
        check_positive("width", width)
        check_norm(norm)
        c_in, h, w = require_image_input(variant, input_shape)
        size = min(h, w)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        index = 0
        for block in VGG_CONFIGS[variant]:
            for j, base in enumerate(block):
                index += 1
                c_out = scaled(base, width)
                layers = [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none"),
                    conv_norm(norm, c_out),
                    nn.ReLU(),
                ]
                if j == len(block) - 1 and size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                stages[f"conv{index}"] = nn.Sequential(*layers)
                c_in = c_out
        stages["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        stages["head"] = nn.Linear(c_in, num_classes)
        super().__init__(stages, input_shape)

def vgg11(input_shape: Sequence[int], num_classes: int, width: float = 1.0, norm: str = "bn") -> VGG:
    """VGG-11 (8 conv layers)."""
    return VGG(input_shape, num_classes, "vgg11", width, norm)


def vgg16(input_shape: Sequence[int], num_classes: int, width: float = 1.0, norm: str = "bn") -> VGG:
    """VGG-16 (13 conv layers)."""
    return VGG(input_shape, num_classes, "vgg16", width, norm)
