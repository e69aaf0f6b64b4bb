"""A stitched network: frozen front of A, trainable stitch, frozen back of B.

The donors are cut at their cut points (:func:`stitchwork.cut.split`), so neither the back
of A nor the front of B runs in the forward pass and no hooks are involved. Donors are
frozen twice over: ``requires_grad_(False)`` and eval mode, which :meth:`StitchedModel.train`
re-imposes whenever anything (a caller, Lightning) switches the stitched module to training,
so BatchNorm running statistics of A and B never move.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..cut import cut_point_shapes, split
from ..models.base import CutModel
from ..utils.modules import common_device
from .base import StitchFactory, StitchLayer, StitchShapeError


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode for every submodule; returns ``module``.

    Only what is not frozen yet is set (checking is cheaper than setting every flag, and a
    matrix job freezes the same donors once per pair)."""
    if any(p.requires_grad for p in module.parameters()):
        module.requires_grad_(False)
    if any(m.training for m in module.modules()):
        module.eval()
    return module


class StitchedModel(nn.Module):
    """``back(stitch(front(x)))`` with only the stitch trainable.

    Parameters
    ----------
    front
        A's stages up to and including cut point i (frozen here).
    stitch
        The stitch layer.
    back
        B's stages after cut point j, ending in the logits (frozen here).
    target_front
        B's stages up to cut point j (frozen). Never used in :meth:`forward`; direct
        matching and the metrics read the target activations ``B_j`` from it.
    """

    def __init__(
        self, front: nn.Module, stitch: StitchLayer, back: nn.Module, target_front: nn.Module | None = None
    ):
        super().__init__()
        self.front, self.stitch, self.back = freeze(front), stitch, freeze(back)
        self.target_front = freeze(target_front) if target_front is not None else None

    def donors(self) -> Iterator[nn.Module]:
        yield from (m for m in (self.front, self.back, self.target_front) if m is not None)

    def train(self, mode: bool = True) -> StitchedModel:
        """Set the stitch's mode; donors stay in eval mode whatever ``mode`` is."""
        super().train(mode)
        for donor in self.donors():
            donor.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.stitch(self.front(x)))

    def from_front(self, a: torch.Tensor) -> torch.Tensor:
        """Logits from A's (e.g. cached) activation at the cut point."""
        return self.back(self.stitch(a))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimizer gets: the stitch's parameters that require gradients."""
        return [p for p in self.stitch.parameters() if p.requires_grad]


def build_stitched(
    model_a: CutModel, cut_a: str, model_b: CutModel, cut_b: str, factory: StitchFactory,
    shapes: tuple[dict, dict] | None = None,
) -> StitchedModel:
    """Cut A at ``cut_a`` and B at ``cut_b`` and join them with ``factory(shape_a, shape_b)``.

    The fronts and back share modules with the donors, which are frozen *in place*
    (``requires_grad_(False)``, eval mode); A and B may be the same model (self-stitch).

    Raises
    ------
    stitchwork.cut.UnknownCutPointError
        For a cut point the model does not list (the message lists the valid ones).
    StitchShapeError
        When the inputs of A and B differ, or the stitch cannot join the two shapes.
    stitchwork.utils.modules.DeviceMismatchError
        When A and B are on different devices (the stitch goes on their device).

    ``shapes`` (the two models' :func:`~stitchwork.cut.cut_point_shapes`) saves the two dummy
    forward passes when many pairs of the same models are built.
    """
    device = common_device("stitching", model_a=model_a, model_b=model_b)
    front_a, _ = split(model_a, cut_a)
    front_b, back_b = split(model_b, cut_b)
    if tuple(model_a.input_shape) != tuple(model_b.input_shape):
        raise StitchShapeError(
            f"models A and B take different inputs: {model_a.input_shape} and {model_b.input_shape}"
        )
    shapes_a, shapes_b = shapes if shapes is not None else (cut_point_shapes(model_a), cut_point_shapes(model_b))
    shape_a, shape_b = shapes_a[cut_a], shapes_b[cut_b]
    layer = factory(shape_a, shape_b)
    if not isinstance(layer, StitchLayer):
        raise TypeError(f"a stitch factory must return a StitchLayer, got {type(layer).__name__}")
    if (layer.in_shape, layer.out_shape) != (shape_a, shape_b):
        raise StitchShapeError(
            f"stitch maps {layer.in_shape} -> {layer.out_shape} but A's {cut_a} gives {shape_a} "
            f"and B's {cut_b} expects {shape_b}"
        )
    freeze(model_a), freeze(model_b)  # whole donors: evaluate() restores their (eval) mode
    return StitchedModel(front_a, layer.to(device), back_b, target_front=front_b)
