"""Accuracy and loss of a classifier over a loader, without a Trainer."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameterless module)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class DeviceMismatchError(ValueError):
    """Models that must run together sit on different devices."""


def common_device(what: str, **models: nn.Module) -> torch.device:
    """The one device that every model in ``models`` (by name) is on.

    Raises :class:`DeviceMismatchError` naming each model's device, instead of torch's error
    from deep inside the first forward pass. ``what`` names the operation for the message.
    """
    devices = {name: model_device(model) for name, model in models.items()}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise DeviceMismatchError(
            f"{what} needs its models on one device, got {where}; move them with model.to(device) first"
        )
    return next(iter(devices.values()))


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str | None = None) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on ``loader`` in eval mode.

    Returns ``{"acc", "loss", "n"}``; the model's train/eval mode is restored.
    """
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("cannot evaluate on an empty loader")
    return {"acc": correct / n, "loss": loss_sum / n, "n": n}
