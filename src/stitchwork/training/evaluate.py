"""Accuracy and loss of a classifier over a loader, without a Trainer."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.modules import DeviceMismatchError, common_device, eval_mode, model_device

__all__ = ["DeviceMismatchError", "common_device", "evaluate", "model_device"]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str | None = None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``loader`` in eval mode.

    Returns ``{"acc", "loss", "n"}``; the model's train/eval mode is restored.
    """
    device = torch.device(device) if device is not None else model_device(model)
    loss_sum, correct, n = 0.0, 0, 0
    with eval_mode(model):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
    if n == 0:
        raise ValueError("cannot evaluate on an empty loader")
    return {"acc": correct / n, "loss": loss_sum / n, "n": n}
