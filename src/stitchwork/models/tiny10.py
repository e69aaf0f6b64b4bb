"""Tiny-10 (Csiszárik et al. 2021): eight 3×3 conv layers 16-16-32-32-32-64-64-64, GAP, FC."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..axes import Axes, PermutationSpec, build_spec, conv, dense, norm, norm_kind
from .base import CutModel, check_positive, require_image_input, scaled
from .norm import check_norm, conv_norm

#: (base channels, stride) of the eight conv layers; stride 2 where the width doubles.
TINY10_LAYERS = ((16, 1), (16, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1))


def conv_block(c_in: int, c_out: int, stride: int, norm: str) -> nn.Sequential:
    """3×3 conv → norm → ReLU (conv bias only when there is no norm to absorb it)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=norm == "none"),
        conv_norm(norm, c_out),
        nn.ReLU(),
    )


def conv_chain_spec(model: CutModel) -> PermutationSpec:
    """Permutation spec of a plain conv chain (Tiny-10, VGG): one permutation ``conv{i}`` per conv layer.

    Each ``conv{i}`` stage is conv → norm → ReLU (→ max-pool); activations are taken at the ReLU.
    """
    axes: Axes = {}
    acts: dict[str, tuple[str, ...]] = {}
    p_in = None
    for name, stage in model.stages.items():
        if not name.startswith("conv"):
            continue
        kind = norm_kind(stage[1])
        axes |= conv(f"stages.{name}.0", name, p_in, bias=kind == "none")
        axes |= norm(f"stages.{name}.1", name, kind)
        acts[name] = (f"stages.{name}.2",)  # the ReLU, before any max-pool
        p_in = name
    axes |= dense("stages.head", None, p_in)
    return build_spec(axes, model, acts)


class ConvChain(CutModel):
    """A plain chain of ``conv{i}`` stages (conv → norm → ReLU) before ``pool`` and ``head``.

    Describes its re-basin permutation axes with :func:`conv_chain_spec`.
    """

    def permutation_spec(self) -> PermutationSpec:
        """Re-basin permutation axes: one permutation per conv layer."""
        return conv_chain_spec(self)


class Tiny10(ConvChain):
    """Tiny-10 with a width multiplier. Cut points: ``conv1`` … ``conv8``, ``pool``."""

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, width: float = 1.0, norm: str = "bn"
    ):
        check_positive("width", width)
        check_norm(norm)
        c_in, _, _ = require_image_input("tiny10", input_shape)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (base, stride) in enumerate(TINY10_LAYERS, start=1):
            c_out = scaled(base, width)
            stages[f"conv{i}"] = conv_block(c_in, c_out, stride, norm)
            c_in = c_out
        stages["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        stages["head"] = nn.Linear(c_in, num_classes)
        super().__init__(stages, input_shape)
