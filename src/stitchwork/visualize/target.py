"""What a visualization targets: channels (or units) at a named cut point, checked up front.

A *channel* of a conv cut point (per-example activation ``(C, H, W)``) is scored by its
mean over all positions, or by its value at one ``(y, x)`` position. A *unit* of a flat
cut point (per-example activation ``(D,)``) is scored by its value. Any other activation
shape (e.g. tokens ``(T, D)``) has no channel axis this module understands and is
refused, as is a position on a flat cut point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..cut import check_cut_point, cut_point_shapes
from ..models.base import CutModel


class ChannelError(ValueError):
    """A channel index, position or cut point that cannot be visualised."""


Position = tuple[int, int] | None


def check_target(
    model: CutModel, cut_point: str, channels: Sequence[int], position: Position = None
) -> tuple[int, ...]:
    """Validate ``channels`` (and ``position``) at ``cut_point``; return the activation shape.

    Raises
    ------
    UnknownCutPointError
        ``cut_point`` is not one of ``model.cut_points``.
    ChannelError
        The cut point has no channel axis, a channel is out of range, the list is empty,
        or the position is off the map (or given for a flat cut point).
    """
    check_cut_point(model, cut_point)
    shape = cut_point_shapes(model)[cut_point]
    if len(shape) not in (1, 3):
        raise ChannelError(
            f"cut point {cut_point!r} has activations of shape {shape}, which have no channel "
            "axis: visualization needs (channels, height, width) or flat (units,) activations"
        )
    channels = list(channels)
    if not channels:
        raise ChannelError("no channels given; pass at least one channel index")
    n = shape[0]
    bad = [c for c in channels if isinstance(c, bool) or int(c) != c or not 0 <= int(c) < n]
    if bad:
        raise ChannelError(f"channel(s) {bad} out of range for cut point {cut_point!r}: valid 0..{n - 1}")
    if position is not None:
        _check_position(cut_point, shape, position)
    return shape


def _check_position(cut_point: str, shape: tuple[int, ...], position: Sequence[int]) -> None:
    if len(shape) != 3:
        raise ChannelError(
            f"cut point {cut_point!r} is flat (shape {shape}): it has units but no spatial "
            "positions; use position=None"
        )
    if len(position) != 2:
        raise ChannelError(f"position must be (y, x), got {tuple(position)!r}")
    y, x = position
    _, h, w = shape
    if not (0 <= y < h and 0 <= x < w):
        raise ChannelError(
            f"position {(y, x)} is off the {h}×{w} map of cut point {cut_point!r}"
        )


def channel_values(acts: torch.Tensor, position: Position = None) -> torch.Tensor:
    """Score every channel of a batch of activations: ``(n, C, H, W)`` or ``(n, D)`` -> ``(n, C)``."""
    if acts.dim() == 2:
        if position is not None:
            raise ChannelError("flat activations have no spatial positions; use position=None")
        return acts
    if acts.dim() != 4:
        raise ChannelError(f"activations of shape {tuple(acts.shape)} have no channel axis")
    if position is None:
        return acts.mean(dim=(2, 3))  # (n, C, H, W) -> (n, C)
    y, x = position
    return acts[:, :, y, x]


def paired_values(acts: torch.Tensor, channels: torch.Tensor, position: Position = None) -> torch.Tensor:
    """Score of channel ``channels[i]`` on example ``i``: ``(n, ...)`` -> ``(n,)``."""
    values = channel_values(acts, position)  # (n, C)
    return values[torch.arange(len(values), device=values.device), channels.to(values.device)]
