"""torchvision's ResNet-18 as a CutModel, optionally with weights from a local file."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torchvision
from torch import nn

from .base import CutModel, require_image_input
from .outside import load_tensor_file


class TVResNet18(CutModel):
    """torchvision ResNet-18 split into ``stem``, ``layer1_0`` … ``layer4_1``, ``pool``, ``head``.

    Parameters
    ----------
    weights
        Path to a torchvision-format ``state_dict`` (keys ``conv1.weight``, ``layer1.0.…``,
        ``fc.weight``), loaded with ``weights_only=True``. Nothing is downloaded. When the
        file's classifier has another number of classes, the head stays freshly initialised.
    small_input
        Replace the 7×7/2 stem and max-pool by a 3×3/1 conv (the usual CIFAR variant).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        weights: str | None = None,
        small_input: bool = False,
    ):
        c_in, _, _ = require_image_input("tv_resnet18", input_shape)
        net = torchvision.models.resnet18(num_classes=num_classes)
        if small_input:
            net.conv1 = nn.Conv2d(c_in, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif c_in != 3:
            net.conv1 = nn.Conv2d(c_in, 64, 7, stride=2, padding=3, bias=False)
        if weights is not None:
            _load_torchvision_weights(net, Path(weights), c_in)
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        stages["stem"] = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        for i in range(1, 5):
            for j, block in enumerate(getattr(net, f"layer{i}")):
                stages[f"layer{i}_{j}"] = block
        stages["pool"] = nn.Sequential(net.avgpool, nn.Flatten())
        stages["head"] = net.fc
        super().__init__(stages, input_shape)


def _load_torchvision_weights(net: nn.Module, path: Path, in_channels: int) -> None:
    """Load a torchvision ResNet-18 state dict into ``net``, with clear errors."""
    state = load_tensor_file(path, "tv_resnet18 weights")
    if "conv1.weight" not in state:
        raise ValueError(
            f"{str(path)!r} is not a torchvision ResNet-18 state_dict (no 'conv1.weight'; "
            f"first keys: {list(state)[:5]})"
        )
    file_channels = state["conv1.weight"].shape[1]
    if file_channels != in_channels or state["conv1.weight"].shape != net.conv1.weight.shape:
        raise ValueError(
            f"tv_resnet18 weights in {str(path)!r} take {file_channels}-channel input with a "
            f"{tuple(state['conv1.weight'].shape[2:])} stem, but the data has {in_channels} channels "
            f"and the model a {tuple(net.conv1.weight.shape[2:])} stem; use RGB data at the "
            "weights' resolution, or drop model.weights to train from scratch"
        )
    if state["fc.weight"].shape != net.fc.weight.shape:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    net.load_state_dict(state, strict=False)
