"""Models from outside stitchwork: torchvision builders, a small ViT, any user module.

Each becomes a :class:`~.module_cut.ModuleCutModel` (cut points by module path, exact split)
and can load a local weights file. Nothing is downloaded.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import nn

from .base import CutModel, require_image_input
from .module_cut import ModuleCutModel

#: Prefixes that training frameworks put before a network's own parameter names.
PREFIXES = ("model.", "module.", "backbone.")


class _ToRGB(nn.Module):
    """Repeat a one-channel image to three channels (no parameters, so no weights change).

    No branch on the shape, so that torch.fx can trace the model (re-basin infers its spec so).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


def _with_rgb_input(model: CutModel, input_shape: Sequence[int]) -> CutModel:
    if len(input_shape) == 3 and int(input_shape[0]) == 1:
        first = next(iter(model.stages))
        model.stages[first] = nn.Sequential(OrderedDict(rgb=_ToRGB(), stage=model.stages[first]))
    return model


def load_tensor_file(path: str | Path, what: str):
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name ``what``
    (the setting or model the file was given for)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing
        raise ValueError(f"cannot read {what} {str(path)!r}: {err}") from err


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a plain ``.pt``/``.pth`` file or a Lightning ``.ckpt``, loaded with
    ``weights_only=True``, with a common framework prefix (``model.``, ``module.``, ``backbone.``)
    stripped."""
    state = load_tensor_file(path, "model.weights_path")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.weights_path {str(path)!r} holds no state_dict of tensors")
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state, changed = {k[len(prefix) :]: v for k, v in state.items()}, True
    return state


def load_weights(net: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``net``; a classifier head of another size stays fresh, any other
    mismatch is an error listing the missing and unexpected keys."""
    state, own = read_state_dict(path), net.state_dict()
    head = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    head_module = _last_linear(net)
    if head and all(k.rpartition(".")[0] == head_module for k in head):
        state = {k: v for k, v in state.items() if k not in head}
    fresh = {f"{head_module}.weight", f"{head_module}.bias"} if head else set()
    missing = sorted(set(own) - set(state) - fresh)
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"model.weights_path {str(path)!r} does not fit {type(net).__name__}: "
                         f"missing keys {missing[:8]}{' …' if len(missing) > 8 else ''}, unexpected keys "
                         f"{unexpected[:8]}{' …' if len(unexpected) > 8 else ''}, wrong shapes {wrong[:8]}")  # fmt: skip
    net.load_state_dict(state, strict=False)


def _last_linear(net: nn.Module) -> str:
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else ""


def outside_model(net: nn.Module, input_shape: Sequence[int], cut_points: Sequence[str] | None = None,
                  weights_path: str | None = None) -> CutModel:  # fmt: skip
    """``net`` (weights from ``weights_path`` when given) as a CutModel cut at ``cut_points``."""
    if weights_path is not None:
        load_weights(net, weights_path)
    return _with_rgb_input(ModuleCutModel(net, input_shape, cut_points), input_shape)


def torchvision_model(input_shape: Sequence[int], num_classes: int, name: str,
                      cut_points: Sequence[str] | None = None, weights_path: str | None = None,
                      **kwargs) -> CutModel:  # fmt: skip
    """Any ``torchvision.models`` builder by ``name`` (``resnet18``, ``vgg16_bn``,
    ``mobilenet_v3_small``, ``vit_b_16``, ...), its head sized for ``num_classes``; ``kwargs``
    go to the builder (e.g. ``image_size`` for ViTs). Never downloads: weights come from
    ``weights_path`` or stay random."""
    require_image_input("torchvision", input_shape)
    builders = torchvision.models.list_models(module=torchvision.models)
    if name not in builders:
        close = difflib.get_close_matches(name, builders, n=5)
        raise ValueError(f"model.name={name!r} is not a torchvision.models classifier"
                         + (f"; close matches: {', '.join(close)}" if close else "")
                         + "; see torchvision.models.list_models()")  # fmt: skip
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    return outside_model(net, input_shape, cut_points, weights_path)


def vit_tiny(input_shape: Sequence[int], num_classes: int, patch_size: int = 4, num_layers: int = 4,
             num_heads: int = 4, hidden_dim: int = 64, mlp_dim: int = 128,
             cut_points: Sequence[str] | None = None, weights_path: str | None = None) -> CutModel:  # fmt: skip
    """torchvision's VisionTransformer with small dimensions at the data's image size: token
    activations ``(n, 1 + patches, hidden_dim)`` on a CPU, for tests and demos."""
    require_image_input("vit_tiny", input_shape)
    if input_shape[1] != input_shape[2] or input_shape[1] % patch_size:
        raise ValueError(f"model=vit_tiny needs square images whose side divides by model.patch_size={patch_size}; "
                         f"the data gives examples of shape {tuple(input_shape)}")  # fmt: skip
    net = torchvision.models.VisionTransformer(
        image_size=int(input_shape[1]), patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
        hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=num_classes,
    )  # fmt: skip
    return outside_model(net, input_shape, cut_points, weights_path)


def module_model(input_shape: Sequence[int], num_classes: int, module: nn.Module,
                 cut_points: Sequence[str] | None = None, weights_path: str | None = None) -> CutModel:  # fmt: skip
    """A user's own ``module`` (built by Hydra from its ``_target_``) as a CutModel."""
    del num_classes  # the user's module sizes its own head
    return outside_model(module, input_shape, cut_points, weights_path)


def timm_model(input_shape: Sequence[int], num_classes: int, name: str,
               cut_points: Sequence[str] | None = None, weights_path: str | None = None,
               **kwargs) -> CutModel:  # fmt: skip
    """Any ``timm`` model by ``name`` (optional extra ``stitchwork[timm]``), never downloaded:
    ``pretrained=False``, weights from ``weights_path``; ``kwargs`` go to ``timm.create_model``
    (e.g. ``img_size``, ``patch_size`` for a ViT at the data's size)."""
    require_image_input("timm", input_shape)
    try:
        import timm
    except ImportError as err:
        raise ValueError("model=timm needs the timm package: pip install 'stitchwork[timm]'") from err
    names = timm.list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5)
        raise ValueError(f"model.name={name!r} is not a timm model" + (f"; close matches: {', '.join(close)}" if close else ""))
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    return outside_model(net, input_shape, cut_points, weights_path)
