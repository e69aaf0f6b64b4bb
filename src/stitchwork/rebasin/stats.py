"""Streaming per-unit statistics of module outputs, shared by activation matching and REPAIR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def batch_input(batch: Any) -> torch.Tensor:
    """The inputs of a batch given as ``x`` or ``(x, y, ...)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def unit_features(out: torch.Tensor) -> torch.Tensor:
    """Units on the last axis, positions pooled: ``(n, c, *spatial) -> (n*prod(spatial), c)``."""
    return out.movedim(1, -1).reshape(-1, out.shape[1])


class Moments:
    """Float64 running mean and standard deviation of each unit."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def update(self, out: torch.Tensor) -> None:
        x = unit_features(out.detach()).double()
        self.total = self.total + x.sum(0)
        self.squares = self.squares + (x * x).sum(0)
        self.n += x.shape[0]

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n == 0:
            raise ValueError("no data reached the layer: the data iterable is empty")
        mean = self.total / self.n
        return mean, (self.squares / self.n - mean**2).clamp_min(0).sqrt()


def output_hook(fn: Callable[[torch.Tensor], torch.Tensor | None]):
    """A forward hook calling ``fn(output)``; a returned tensor replaces the output."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        return fn(output)

    return hook
