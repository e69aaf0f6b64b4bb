"""Streaming per-unit statistics of module outputs, shared by activation matching and REPAIR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..utils.moments import Moments as RowMoments


def batch_input(batch: Any) -> torch.Tensor:
    """The inputs of a batch given as ``x`` or ``(x, y, ...)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def unit_features(out: torch.Tensor) -> torch.Tensor:
    """Units on the last axis, positions pooled: ``(n, c, *spatial) -> (n*prod(spatial), c)``."""
    return out.movedim(1, -1).reshape(-1, out.shape[1])


class Moments(RowMoments):
    """Float64 running mean and standard deviation of each unit of a module's output.

    The shared :class:`~stitchwork.utils.moments.Moments` (shifted by the first batch's
    mean) over :func:`unit_features` rows, keeping per-unit variances only.
    """

    def __init__(self) -> None:
        super().__init__(xx="diag")

    def update(self, out: torch.Tensor) -> None:
        super().update(unit_features(out.detach()))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n == 0:
            raise ValueError("no data reached the layer: the data iterable is empty")
        return self.mean_x, self.cov_x().clamp_min(0).sqrt()


def output_hook(fn: Callable[[torch.Tensor], torch.Tensor | None]):
    """A forward hook calling ``fn(output)``; a returned tensor replaces the output."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        return fn(output)

    return hook
