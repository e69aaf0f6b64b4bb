"""Reset BatchNorm statistics of a merged or combined model (one no-grad pass in train mode).

Interpolated weights no longer match their interpolated running statistics (the
"variance collapse" of Jordan et al. 2023), so a merged BN net must re-estimate them
before any evaluation means anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.modules import model_device
from .stats import batch_input


def running_norms(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics (what a merge interpolates)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reset_bn_stats(model: nn.Module, data: Iterable[Any], max_batches: int | None = None) -> nn.Module:
    """Recompute every BatchNorm's running mean and variance on ``data``, in place.

    Statistics are the exact average over the batches seen (``momentum=None``); only
    the BatchNorm layers run in train mode, so dropout etc. stay off. The model's
    modes and momenta are restored. A model without BatchNorm is returned unchanged.
    Returns ``model`` (so it can serve as an interpolation ``post`` step).
    """
    norms = running_norms(model)
    if not norms:
        return model
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    device = model_device(model)
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            model(batch_input(batch).to(device))
            seen += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
    if seen == 0:
        raise ValueError("BN reset got no data: the data iterable is empty")
    return model
