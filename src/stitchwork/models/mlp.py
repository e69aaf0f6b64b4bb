"""Multi-layer perceptron with one cut point per hidden layer."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..axes import Axes, PermutationSpec, build_spec, dense
from .base import CutModel, check_positive


class MLP(CutModel):
    """``depth`` hidden layers of ``width`` units (Linear + ReLU), then a linear head.

    Cut points: ``fc1`` … ``fc{depth}`` (post-ReLU hidden activations).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 3, width: int = 128):
        check_positive("depth", depth)
        check_positive("width", width)
        if int(depth) != depth or int(width) != width:
            raise ValueError(f"depth and width must be integers, got depth={depth!r}, width={width!r}")
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        fan_in = math.prod(input_shape)
        for i in range(1, int(depth) + 1):
            layers = [nn.Flatten()] if i == 1 else []
            layers += [nn.Linear(fan_in, int(width)), nn.ReLU()]
            stages[f"fc{i}"] = nn.Sequential(*layers)
            fan_in = int(width)
        stages["head"] = nn.Linear(fan_in, num_classes)
        super().__init__(stages, input_shape)

    def permutation_spec(self) -> PermutationSpec:
        """Re-basin permutation axes: one permutation per hidden layer (``fc{i}``)."""
        axes: Axes = {}
        acts: dict[str, tuple[str, ...]] = {}
        hidden = [name for name in self.stages if name != "head"]
        p_in = None
        for i, name in enumerate(hidden):
            linear = 1 if i == 0 else 0  # the first stage starts with Flatten
            axes |= dense(f"stages.{name}.{linear}", name, p_in)
            acts[name] = (f"stages.{name}",)
            p_in = name
        axes |= dense("stages.head", None, p_in)
        return build_spec(axes, self, acts)
