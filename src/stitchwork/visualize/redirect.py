"""Redirected ReLU gradients, so that optimisation can wake a channel that starts dead.

If the target channel is zero everywhere on the starting image (common deep in a
network), a ReLU passes no gradient and the image never changes. Inside
:func:`redirected_relu`, every ReLU (module, ``torch.relu`` or ``F.relu``) computes the
usual forward value, and its backward pass is the usual one *unless* it is zero for an
example; only then does it also let through gradient that would push a negative input
up (Lucid's "redirected ReLU", Olah et al. 2017). Where the true gradient is non-zero it
is used unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        usual = grad * (x > 0)
        if x.dim() < 2:
            return usual
        dead = usual.flatten(1).abs().sum(1) == 0  # (n,): no gradient reaches this example
        redirected = grad * ((x > 0) | (grad < 0))  # grad < 0: raising x lowers the loss
        mask = dead.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(mask, redirected, usual)


_RELUS = {torch.relu, F.relu, torch.Tensor.relu, torch.relu_, torch.Tensor.relu_}


class redirected_relu(TorchFunctionMode):  # noqa: N801 (used as a context manager)
    """Context manager: ReLUs inside it use redirected gradients (see module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS and torch.is_grad_enabled():
            return _RedirectedReLU.apply(args[0] if args else kwargs["input"])
        return func(*args, **kwargs)
