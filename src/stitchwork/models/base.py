"""The shape every stitchwork model shares: an ordered chain of named stages.

Each stage output is a *cut point*. Because a model is nothing but its stages run in
order, the front ``stages[:i+1]`` and the back ``stages[i+1:]`` compose to exactly the
model: no hooks, and the unused half of a network is never run.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class CutModel(nn.Module):
    """A classifier written as named stages; every stage but the last is a cut point.

    Parameters
    ----------
    stages
        Ordered ``name -> module``. The last stage is the classifier head (its output
        is the logits) and is not a cut point.
    input_shape
        Shape of one input example, e.g. ``(1, 8, 8)`` or ``(40,)``.
    """

    def __init__(self, stages: OrderedDict[str, nn.Module], input_shape: Sequence[int]):
        super().__init__()
        if len(stages) < 2:
            raise ValueError(f"a CutModel needs at least two stages, got {list(stages)}")
        self.stages = nn.ModuleDict(stages)
        self.input_shape = tuple(int(s) for s in input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return x

    @property
    def cut_points(self) -> list[str]:
        """Names of the stage outputs where the model may be split, input to output."""
        return list(self.stages.keys())[:-1]


def check_positive(name: str, value: float) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` > 0."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def scaled(base: int, width: float) -> int:
    """Channel count ``base * width`` rounded, at least 1."""
    return max(1, int(round(base * width)))


def require_image_input(model_name: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Return ``(c, h, w)`` or explain that ``model_name`` needs images."""
    if len(input_shape) != 3:
        raise ValueError(
            f"model {model_name} needs image input of shape (channels, height, width), but the "
            f"data gives examples of shape {tuple(input_shape)}; use model=mlp for flat data "
            "(e.g. mnist1d) or an image data set (digits, cifar10, mnist, ...)"
        )
    c, h, w = (int(s) for s in input_shape)
    return c, h, w
