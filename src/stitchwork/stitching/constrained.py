"""Constrained stitch layers: orthogonal (Procrustes) and permutation (hard channel matching)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .base import (
    Fitter,
    StitchLayer,
    StitchWeights,
    apply_linear,
    as_parameter_data,
    channel_shape,
    check_equal_widths,
)
from .direct import permutation_fit, procrustes_fit


class OrthogonalStitch(StitchLayer):
    """``s Q x + b`` with (semi-)orthogonal ``Q`` and, when ``scale``, one positive scalar ``s``.

    ``Q`` stays orthogonal during task-loss training through
    :func:`torch.nn.utils.parametrizations.orthogonal`; the direct fit is orthogonal
    Procrustes on the centred cross-covariance.
    """

    kind = "orthogonal"

    def __init__(
        self, in_shape: Sequence[int], out_shape: Sequence[int], scale: bool = True, resize: bool = False
    ):
        super().__init__(in_shape, out_shape, resize)
        self.use_scale = bool(scale)
        self.linear = parametrizations.orthogonal(nn.Linear(self.in_features, self.out_features))
        self.log_scale = nn.Parameter(torch.zeros(()), requires_grad=self.use_scale)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return apply_linear(x, self.weight_matrix(), self.linear.bias)

    def weight_matrix(self) -> torch.Tensor:
        return self.log_scale.exp() * self.linear.weight

    def fitter(self) -> Fitter:
        return functools.partial(procrustes_fit, scale=self.use_scale)

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        w = weights.weight
        s = (w.square().sum() / min(w.shape)).sqrt()  # singular values of s·Q are all s
        self.linear.weight = as_parameter_data(w / s, self.linear.bias)
        self.log_scale.copy_(as_parameter_data(s.log(), self.log_scale))
        self.linear.bias.copy_(as_parameter_data(weights.bias, self.linear.bias))


class PermutationStitch(StitchLayer):
    """Output channel j copies input channel ``index[j]`` (a fixed one-to-one matching).

    The matching comes from a direct pass: the assignment maximising the summed correlation
    between A's and B's channels (``scipy.optimize.linear_sum_assignment``). With ``affine``
    each copied channel also gets a scale and shift (least squares, trainable); the matching
    itself is never trained. Requires equal widths.
    """

    kind = "permutation"
    needs_direct_init = True

    def __init__(
        self, in_shape: Sequence[int], out_shape: Sequence[int], affine: bool = True, resize: bool = False
    ):
        super().__init__(in_shape, out_shape, resize)
        check_equal_widths(self.kind, self.in_shape, self.out_shape)
        self.affine = bool(affine)
        self.register_buffer("index", torch.arange(self.out_features))
        self.scale = nn.Parameter(torch.ones(self.out_features), requires_grad=self.affine)
        self.shift = nn.Parameter(torch.zeros(self.out_features), requires_grad=self.affine)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        x = x.index_select(1, self.index)
        return x * channel_shape(self.scale, x.ndim) + channel_shape(self.shift, x.ndim)

    def weight_matrix(self) -> torch.Tensor:
        eye = torch.eye(self.out_features, device=self.scale.device, dtype=self.scale.dtype)
        return self.scale[:, None] * eye[self.index.to(self.scale.device)]  # row j = scale_j e_index[j]

    def fitter(self) -> Fitter:
        return functools.partial(permutation_fit, affine=self.affine)

    @torch.no_grad()
    def load_weights(self, weights: StitchWeights) -> None:
        if weights.index is None:
            raise ValueError("a permutation stitch needs weights with an index (use permutation_fit)")
        index = weights.index.to(self.index.device)
        out = torch.arange(len(index), device=weights.weight.device)
        self.index.copy_(index)
        self.scale.copy_(as_parameter_data(weights.weight[out, weights.index], self.scale))
        self.shift.copy_(as_parameter_data(weights.bias, self.shift))
