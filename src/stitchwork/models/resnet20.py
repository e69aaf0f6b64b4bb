"""CIFAR ResNet-20 (He et al. 2016) with a width multiplier and a choice of norm."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ..axes import Axes, PermutationSpec, build_spec, conv, dense, norm, norm_kind
from .base import CutModel, check_positive, require_image_input, scaled
from .norm import check_norm, conv_norm


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection; a 1×1 conv shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = conv_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=bias)
        self.norm2 = conv_norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias), conv_norm(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet20(CutModel):
    """ResNet-20 for small images: stem, 3 stages × 3 blocks (16w, 32w, 64w), GAP, FC.

    Cut points: ``stem``, ``layer1_0`` … ``layer3_2`` (block outputs), ``pool``.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, width: float = 1.0, norm: str = "bn"
    ):
        check_positive("width", width)
        check_norm(norm)
        c_in, _, _ = require_image_input("resnet20", input_shape)
        c = scaled(16, width)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        stages["stem"] = nn.Sequential(
            nn.Conv2d(c_in, c, 3, padding=1, bias=norm == "none"), conv_norm(norm, c), nn.ReLU()
        )
        c_prev = c
        for stage in range(1, 4):
            c_out = scaled(16 * 2 ** (stage - 1), width)
            for block in range(3):
                stride = 2 if stage > 1 and block == 0 else 1
                stages[f"layer{stage}_{block}"] = BasicBlock(c_prev, c_out, stride, norm)
                c_prev = c_out
        stages["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        stages["head"] = nn.Linear(c_prev, num_classes)
        super().__init__(stages, input_shape)

    def permutation_spec(self) -> PermutationSpec:
        """Re-basin permutation axes: one ``stage{s}`` per residual stream, one inner per block."""
        kind = norm_kind(self.stages["stem"][1])
        bias = kind == "none"
        axes: Axes = conv("stages.stem.0", "stage1", None, bias) | norm("stages.stem.1", "stage1", kind)
        acts: dict[str, list[str]] = {"stage1": ["stages.stem"]}
        stream = "stage1"
        for name, block in self.stages.items():
            if not name.startswith("layer"):
                continue
            out = f"stage{name[5]}"
            inner = f"{name}.inner"
            prefix = f"stages.{name}"
            axes |= conv(f"{prefix}.conv1", inner, stream, bias) | norm(f"{prefix}.norm1", inner, kind)
            axes |= conv(f"{prefix}.conv2", out, inner, bias) | norm(f"{prefix}.norm2", out, kind)
            if isinstance(block.shortcut, nn.Sequential):
                axes |= conv(f"{prefix}.shortcut.0", out, stream, bias)
                axes |= norm(f"{prefix}.shortcut.1", out, kind)
            acts.setdefault(out, []).append(prefix)
            acts[inner] = [f"{prefix}.norm1" if kind != "none" else f"{prefix}.conv1"]
            stream = out
        axes |= dense("stages.head", None, stream)
        return build_spec(axes, self, {p: tuple(v) for p, v in acts.items()})
