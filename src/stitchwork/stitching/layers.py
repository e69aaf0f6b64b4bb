"""Affine-family stitch layers: affine, bn_affine, low_rank, diagonal, identity, flatten_linear.

Each is a :class:`~.base.StitchLayer`; a ``conf/stitch/<kind>.yaml`` names the class with
``_partial_: true`` so that the app only supplies the two shapes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .base import (
    Fitter,
    StitchLayer,
    StitchWeights,
    apply_linear,
    as_parameter_data,
    channel_shape,
    check_equal_widths,
)
from .direct import check_rank, diagonal_fit, least_squares_fit, reduced_rank_fit


def _init_linear(out_features: int, in_features: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Weight ``(out, in)`` and bias initialised as :class:`torch.nn.Linear` does."""
    layer = nn.Linear(in_features, out_features)
    return nn.Parameter(layer.weight.detach().clone()), nn.Parameter(layer.bias.detach().clone())


class _DenseMap(StitchLayer):
    """A stitch whose map holds a dense ``weight (out, in)`` fitted by affine least squares."""

    weight: nn.Parameter

    def weight_matrix(self) -> torch.Tensor:
        return self.weight

    def fitter(self) -> Fitter:
        return least_squares_fit


class AffineStitch(_DenseMap):
    """``W x + b`` on channels: a 1×1 convolution on conv maps, a linear layer on flat ones."""

    kind = "affine"

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], resize: bool = False):
        super().__init__(in_shape, out_shape, resize)
        self.weight, self.bias = _init_linear(self.out_features, self.in_features)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return apply_linear(x, self.weight, self.bias)

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        self.weight.copy_(as_parameter_data(weights.weight, self.weight))
        self.bias.copy_(as_parameter_data(weights.bias, self.bias))

    def affine_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight.detach(), self.bias.detach()


class FlattenLinearStitch(AffineStitch):
    """One linear map from a whole flattened example to a whole example of B's shape.

    Joins conv maps and flat layers in either direction; its width is ``prod(shape)``, so
    on large maps it is big (and the direct fit's ``(d, d)`` moments bigger).
    """

    kind = "flatten_linear"
    flattens = True

    def map(self, x: torch.Tensor) -> torch.Tensor:
        y = apply_linear(x.flatten(1), self.weight, self.bias)  # (n, prod in) -> (n, prod out)
        return y.view(x.shape[0], *self.out_shape)


class BNAffineStitch(_DenseMap):
    """BatchNorm → 1×1 conv (or linear) → BatchNorm, the stitch of Bansal et al. (2021).

    A direct fit sets the input norm to the data's statistics and the output norm so that, in
    eval mode, the whole layer equals the least-squares map; task-loss training then updates
    the norms' affine parameters and running statistics as usual.
    """

    kind = "bn_affine"

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], resize: bool = False):
        super().__init__(in_shape, out_shape, resize)
        norm = nn.BatchNorm2d if len(self.in_shape) == 3 else nn.BatchNorm1d
        self.norm_in, self.norm_out = norm(self.in_features), norm(self.out_features)
        self.weight, self.bias = _init_linear(self.out_features, self.in_features)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_out(apply_linear(self.norm_in(x), self.weight, self.bias))

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        eps_in, eps_out = self.norm_in.eps, self.norm_out.eps
        sd_in = (weights.in_var + eps_in).sqrt()
        _set_norm(self.norm_in, weights.in_mean, weights.in_var, torch.ones_like(sd_in), torch.zeros_like(sd_in))
        # W ((x - m) / sd) sd + W m + b = W x + b
        self.weight.copy_(as_parameter_data(weights.weight * sd_in, self.weight))
        self.bias.copy_(as_parameter_data(weights.bias + weights.weight @ weights.in_mean, self.bias))
        sd_out = (weights.out_var + eps_out).sqrt()
        _set_norm(self.norm_out, weights.out_mean, weights.out_var, sd_out, weights.out_mean)


def _set_norm(norm: nn.modules.batchnorm._BatchNorm, mean, var, gamma, beta) -> None:
    for target, value in ((norm.running_mean, mean), (norm.running_var, var), (norm.weight, gamma), (norm.bias, beta)):
        target.copy_(as_parameter_data(value, target))


class LowRankStitch(StitchLayer):
    """``U (V x) + b`` with ``V: in -> rank`` and ``U: rank -> out`` (Csiszárik et al.)."""

    kind = "low_rank"

    def __init__(
        self, in_shape: Sequence[int], out_shape: Sequence[int], rank: int = 8, resize: bool = False
    ):
        super().__init__(in_shape, out_shape, resize)
        check_rank(rank, self.in_features, self.out_features)
        self.rank = int(rank)
        self.down, _ = _init_linear(self.rank, self.in_features)  # (r, in)
        self.up, self.bias = _init_linear(self.out_features, self.rank)  # (out, r)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return apply_linear(apply_linear(x, self.down, None), self.up, self.bias)

    def weight_matrix(self) -> torch.Tensor:
        return self.up @ self.down

    def fitter(self) -> Fitter:
        return functools.partial(reduced_rank_fit, rank=self.rank)

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        u, s, vh = torch.linalg.svd(weights.weight, full_matrices=False)
        root = s[: self.rank].sqrt()
        self.up.copy_(as_parameter_data(u[:, : self.rank] * root, self.up))
        self.down.copy_(as_parameter_data(root[:, None] * vh[: self.rank], self.down))
        self.bias.copy_(as_parameter_data(weights.bias, self.bias))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"


class DiagonalStitch(StitchLayer):
    """Per-channel scale and shift: channel k of B is an affine function of channel k of A."""

    kind = "diagonal"

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], resize: bool = False):
        super().__init__(in_shape, out_shape, resize)
        check_equal_widths(self.kind, self.in_shape, self.out_shape)
        self.scale = nn.Parameter(torch.ones(self.out_features))
        self.shift = nn.Parameter(torch.zeros(self.out_features))

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return x * channel_shape(self.scale, x.ndim) + channel_shape(self.shift, x.ndim)

    def weight_matrix(self) -> torch.Tensor:
        return torch.diag(self.scale)

    def fitter(self) -> Fitter:
        return diagonal_fit

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        self.scale.copy_(as_parameter_data(weights.weight.diagonal(), self.scale))
        self.shift.copy_(as_parameter_data(weights.bias, self.shift))


class IdentityStitch(StitchLayer):
    """No stitch at all (after an optional resize): the baseline when shapes already match."""

    kind = "identity"

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], resize: bool = False):
        super().__init__(in_shape, out_shape, resize)
        check_equal_widths(self.kind, self.in_shape, self.out_shape)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def weight_matrix(self) -> torch.Tensor:
        return torch.eye(self.in_features)

    def fitter(self) -> None:
        return None

    def load_weights(self, weights: StitchWeights) -> None:
        raise TypeError("the identity stitch has no weights to load")


def parameter_count(layer: StitchLayer) -> int:
    """Number of trainable entries of a stitch layer."""
    return sum(math.prod(p.shape) for p in layer.parameters() if p.requires_grad)
