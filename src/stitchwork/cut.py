"""Split a CutModel at a named cut point into a front and a back.

``back(front(x))`` runs exactly the modules of ``model(x)`` in the same order, so the two
are bit-identical. Front and back *share* the model's modules (no copies): freezing or
moving one moves the model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .models.base import CutModel
from .utils.modules import eval_mode, model_device


class UnknownCutPointError(ValueError):
    """A cut point name that the model does not list."""


def check_cut_point(model: CutModel, name: str) -> int:
    """Index of ``name`` among the model's stages, or an error listing the valid names."""
    points = model.cut_points
    if name not in points:
        raise UnknownCutPointError(
            f"unknown cut point {name!r} for {type(model).__name__}; valid cut points: "
            f"{', '.join(points)}"
        )
    return points.index(name)


def split(model: CutModel, cut_point: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Return ``(front, back)``: stages up to and including ``cut_point``, and the rest."""
    index = check_cut_point(model, cut_point)
    items = list(model.stages.items())
    front = nn.Sequential(OrderedDict(items[: index + 1]))
    back = nn.Sequential(OrderedDict(items[index + 1 :]))
    return front, back


def front(model: CutModel, cut_point: str) -> nn.Sequential:
    """The stages up to and including ``cut_point``."""
    return split(model, cut_point)[0]


def back(model: CutModel, cut_point: str) -> nn.Sequential:
    """The stages after ``cut_point``, ending in the logits."""
    return split(model, cut_point)[1]


@torch.no_grad()
def cut_point_shapes(model: CutModel, input_shape: Sequence[int] | None = None) -> dict[str, tuple]:
    """Shape of one example's activation at every cut point (and ``logits``).

    Runs one forward pass of two dummy examples in eval mode on the model's device; the
    model's train/eval mode is restored afterwards.
    """
    shape = tuple(input_shape) if input_shape is not None else model.input_shape
    shapes: dict[str, tuple] = {}
    with eval_mode(model):
        x = torch.zeros((2, *shape), device=model_device(model))
        for name, stage in model.stages.items():
            x = stage(x)
            shapes[name if name in model.cut_points else "logits"] = tuple(x.shape[1:])
    return shapes


def cut_outputs(model: CutModel, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs of the cut points ``names`` from one run of the model's stages on ``x``.

    The stages run in order and stop after the deepest requested cut point, so every front
    of a model costs one forward pass in all; each output equals ``front(model, name)(x)``
    bit for bit (the same modules run in the same order). Stages must not modify their
    input in place (no stitchwork model does).
    """
    wanted = {check_cut_point(model, name) for name in names}
    out: dict[str, torch.Tensor] = {}
    if not wanted:
        return out
    last = max(wanted)
    for index, (name, stage) in enumerate(model.stages.items()):
        x = stage(x)
        if index in wanted:
            out[name] = x
        if index == last:
            break
    return out
