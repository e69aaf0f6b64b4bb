"""The interface every stitch layer shares, the fitted weights it loads, and shape checks.

A stitch layer maps the activation of network A at cut point i, one example of shape
``in_shape``, to the shape ``out_shape`` that network B expects at cut point j. Two
layouts exist:

- *channel maps* act on each position of a conv map, ``(n, c_a, h, w) -> (n, c_b, h, w)``
  (a 1×1 convolution), or on flat activations ``(n, d_a) -> (n, d_b)``; for least squares
  every spatial position is a sample, ``(n*h*w, c)``;
- *flatten maps* see a whole example as one vector, ``(n, *in_shape) -> (n, *out_shape)``,
  which is the only way to go between a conv map and a flat layer.

Conv maps of different spatial size are resized bilinearly to B's size before the map
when ``resize=True`` (Balogh & Jelasity); otherwise the mismatch is an error.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class StitchShapeError(ValueError):
    """The two cut points' shapes cannot be joined by the chosen stitch layer and options."""


@dataclass(frozen=True)
class StitchWeights:
    """A fitted affine map ``y = W x + b`` and the statistics a normalising stitch needs.

    Attributes
    ----------
    weight
        ``(out, in)`` map in float64.
    bias
        ``(out,)``.
    in_mean, in_var
        Per-feature mean and variance of the (resized) inputs the map was fitted on.
    out_mean, out_var
        Per-feature mean and variance of the fitted outputs ``W x + b``.
    index
        For a permutation: the input feature each output feature copies, ``(out,)``.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    in_mean: torch.Tensor
    in_var: torch.Tensor
    out_mean: torch.Tensor
    out_var: torch.Tensor
    index: torch.Tensor | None = None


@dataclass(frozen=True)
class CrossMoments:
    """Centred second moments of paired rows ``x (n, dx)`` and ``y (n, dy)``, in float64.

    ``cxx = Xcᵀ Xc / n``, ``cxy = Xcᵀ Yc / n`` and ``cyy_diag = diag(Ycᵀ Yc) / n``, with
    ``Xc, Yc`` centred at the full-data means ``mean_x, mean_y``.
    """

    n: int
    mean_x: torch.Tensor  # (dx,)
    mean_y: torch.Tensor  # (dy,)
    cxx: torch.Tensor  # (dx, dx)
    cxy: torch.Tensor  # (dx, dy)
    cyy_diag: torch.Tensor  # (dy,)


class Fitter(Protocol):
    """A direct (closed-form) matcher: moments of ``(front_acts, target_acts)`` -> weights."""

    def __call__(self, moments: CrossMoments, ridge: float = 0.0) -> StitchWeights: ...


class StitchFactory(Protocol):
    """What a ``conf/stitch/*.yaml`` instantiates to: shapes in, a stitch layer out."""

    def __call__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> StitchLayer: ...


class StitchLayer(nn.Module, abc.ABC):
    """A trainable map from A's activation at one cut point to B's at another.

    Parameters
    ----------
    in_shape, out_shape
        Shapes of one example at A's and B's cut point, e.g. ``(32, 4, 4)`` or ``(64,)``.
    resize
        Bilinearly resize a conv map to B's spatial size when the two differ.
    """

    #: Short name used in configs and results (``affine``, ``bn_affine``, ...).
    kind: str = ""
    #: Whether the layer sees whole examples as vectors (may join conv maps and flat layers).
    flattens: bool = False
    #: Whether the layer must be fitted from activation statistics before it can be trained.
    needs_direct_init: bool = False
    #: Whether the layer maps token activations ``(tokens, d)`` token by token.
    tokens: bool = False

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], resize: bool = False):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.resize = bool(resize)
        if self.tokens:
            check_token_shapes(self.kind, self.in_shape, self.out_shape)
        elif not self.flattens:
            check_channel_shapes(self.kind, self.in_shape, self.out_shape, self.resize)

    # -- sizes -----------------------------------------------------------------------
    @property
    def in_features(self) -> int:
        """Width of the map's input: channels (channel map), token width (token map) or all
        entries (flatten map)."""
        return math.prod(self.in_shape) if self.flattens else self.in_shape[-1 if self.tokens else 0]

    @property
    def out_features(self) -> int:
        return math.prod(self.out_shape) if self.flattens else self.out_shape[-1 if self.tokens else 0]

    # -- the map ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map(self.prepare(x))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Resize a conv map to B's spatial size when that is needed and allowed."""
        if not self.flattens and x.ndim == 4 and tuple(x.shape[2:]) != self.out_shape[1:]:
            x = F.interpolate(x, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return x

    @abc.abstractmethod
    def map(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the stitch to a prepared batch."""

    @abc.abstractmethod
    def weight_matrix(self) -> torch.Tensor:
        """The effective linear part ``(out, in)`` (what the l1 penalty and sparsity see)."""

    @abc.abstractmethod
    def fitter(self) -> Fitter | None:
        """The closed-form matcher for this layer, or None when there is nothing to fit."""

    @abc.abstractmethod
    def load_weights(self, weights: StitchWeights) -> None:
        """Set the parameters from a direct fit."""

    def affine_rows(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(weight (out, in), bias (out,))`` with ``rows(map(x)) == rows(x) @ weightᵀ + bias``
        exactly, when the map is that affine function of the rows; None otherwise (the
        default). Lets a matrix job compute training-split residuals from its fit moments."""
        return None

    # -- least-squares rows ------------------------------------------------------------
    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """Samples × features view used by the direct fit and the residual metrics.

        Channel maps: ``(n, c, h, w) -> (n*h*w, c)``; token maps: ``(n, t, d) -> (n*t, d)``;
        flatten maps: ``(n, ...) -> (n, prod)``.
        """
        if self.flattens:
            return t.reshape(t.shape[0], -1)
        if self.tokens:
            return t.reshape(-1, t.shape[-1])
        if t.ndim == 4:
            return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
        return t

    def extra_repr(self) -> str:
        return f"{self.in_shape} -> {self.out_shape}, resize={self.resize}"


def check_channel_shapes(
    kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...], resize: bool
) -> None:
    """Raise a :class:`StitchShapeError` unless a channel map can join the two shapes."""
    if len(in_shape) == 2 or len(out_shape) == 2:
        raise StitchShapeError(
            f"stitch {kind!r} maps flat (d,) or conv (c, h, w) activations, but {in_shape} -> "
            f"{out_shape} holds token activations (tokens, d); choose stitch=token_linear (one "
            "affine map applied to every token) or stitch=flatten_linear (whole examples)"
        )
    if len(in_shape) not in (1, 3) or len(out_shape) not in (1, 3):
        raise StitchShapeError(
            f"stitch {kind!r} needs flat (d,) or conv (c, h, w) activations, got "
            f"{in_shape} -> {out_shape}"
        )
    if len(in_shape) != len(out_shape):
        raise StitchShapeError(
            f"cannot join a {'conv' if len(in_shape) == 3 else 'flat'} activation {in_shape} to "
            f"a {'conv' if len(out_shape) == 3 else 'flat'} activation {out_shape} with stitch "
            f"{kind!r}; choose stitch=flatten_linear to map whole examples"
        )
    if len(in_shape) == 3 and in_shape[1:] != out_shape[1:] and not resize:
        raise StitchShapeError(
            f"spatial sizes differ: A gives {in_shape}, B expects {out_shape}; set "
            f"stitch.resize=true to resize A's map bilinearly to {out_shape[1:]}"
        )


def check_token_shapes(kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    """A token map joins ``(tokens, d_a)`` to ``(tokens, d_b)``: same token count, any widths."""
    if len(in_shape) != 2 or len(out_shape) != 2:
        raise StitchShapeError(
            f"stitch {kind!r} maps token activations (tokens, d), got {in_shape} -> {out_shape}; "
            "use stitch=affine for conv or flat activations, stitch=flatten_linear to join the two kinds"
        )
    if in_shape[0] != out_shape[0]:
        raise StitchShapeError(
            f"stitch {kind!r} maps token by token, but A gives {in_shape[0]} tokens {in_shape} and B "
            f"expects {out_shape[0]} {out_shape}; use stitch=flatten_linear to map whole examples"
        )


def check_equal_widths(kind: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
    """One-to-one stitches (diagonal, permutation, identity) need the same number of channels."""
    if in_shape[0] != out_shape[0]:
        raise StitchShapeError(
            f"stitch {kind!r} needs equal widths but A has {in_shape[0]} channels {in_shape} and B "
            f"has {out_shape[0]} {out_shape}; use affine, low_rank or orthogonal instead"
        )


def apply_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``weight (out, in)`` on the channel axis of ``(n, in)`` or ``(n, in, h, w)``."""
    if x.ndim == 4:
        return F.conv2d(x, weight[:, :, None, None], bias)  # (n, in, h, w) -> (n, out, h, w)
    return F.linear(x, weight, bias)


def channel_shape(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel vector ``(c,)`` broadcastable against a batch with ``ndim`` dimensions."""
    return t.view(-1, 1, 1) if ndim == 4 else t


def as_parameter_data(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A fitted float64 tensor cast to the dtype and device of the parameter it replaces."""
    return t.detach().to(dtype=like.dtype, device=like.device)
