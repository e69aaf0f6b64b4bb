"""Torch plumbing shared by every room: where a model lives, and running it in eval mode.

Library code that runs a model for measurement (evaluation, statistics, similarity, feature
visualization) puts it in eval mode for the duration and gives it back as it was found;
:func:`eval_mode` is that block, written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def model_device(model: nn.Module, default: torch.device | str | None = None) -> torch.device:
    """Device of the model's first parameter or buffer.

    A module with neither (e.g. a bare ``nn.ReLU``) is on ``default``, the CPU if not given.
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device(default if default is not None else "cpu")


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


@contextmanager
def eval_mode(*models: nn.Module | None) -> Iterator[None]:
    """Run the block with every model in eval mode; restore each one's train flag after.

    ``None`` entries are ignored, so optional models can be passed as they are. Restoring
    calls ``model.train(mode)``, so a model that overrides ``train`` (e.g. a stitched model
    keeping its frozen donors in eval mode) keeps its own rule. Restored on error too.
    """
    present = [m for m in models if m is not None]
    modes = [m.training for m in present]
    try:
        for m in present:
            m.eval()
        yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)
