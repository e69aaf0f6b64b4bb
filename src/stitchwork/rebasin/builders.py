"""Hand-written permutation specs, one short function per stitchwork architecture.

Permutation names: ``fc{i}`` / ``conv{i}`` for plain chains; for ResNet-20 one
``stage{s}`` per residual stream (shared by the stem or the stage's first shortcut and
every block output of the stage) and one ``layer{s}_{b}.inner`` per block.
:func:`spec_for` picks the builder for a model, or infers the spec from a torch.fx trace.
"""

from __future__ import annotations

from torch import nn

from ..models import MLP, VGG, ResNet20, Tiny10
from .spec import Axes, PermutationSpec, SpecError, build_spec, conv, dense, norm, norm_kind


def mlp_spec(model: MLP) -> PermutationSpec:
    """Spec of an :class:`~stitchwork.models.MLP`: one permutation per hidden layer."""
    axes: Axes = {}
    acts: dict[str, tuple[str, ...]] = {}
    hidden = [name for name in model.stages if name != "head"]
    p_in = None
    for i, name in enumerate(hidden):
        linear = 1 if i == 0 else 0  # the first stage starts with Flatten
        axes |= dense(f"stages.{name}.{linear}", name, p_in)
        acts[name] = (f"stages.{name}",)
        p_in = name
    axes |= dense("stages.head", None, p_in)
    return build_spec(axes, model, acts)


def chain_spec(model: Tiny10 | VGG) -> PermutationSpec:
    """Spec of a plain conv chain (Tiny-10, VGG): one permutation per conv layer."""
    axes: Axes = {}
    acts: dict[str, tuple[str, ...]] = {}
    p_in = None
    for name, stage in model.stages.items():
        if not name.startswith("conv"):
            continue
        kind = norm_kind(stage[1])
        axes |= conv(f"stages.{name}.0", name, p_in, bias=kind == "none")
        axes |= norm(f"stages.{name}.1", name, kind)
        acts[name] = (f"stages.{name}.2",)  # the ReLU, before any max-pool
        p_in = name
    axes |= dense("stages.head", None, p_in)
    return build_spec(axes, model, acts)


def resnet20_spec(model: ResNet20) -> PermutationSpec:
    """Spec of a CIFAR :class:`~stitchwork.models.ResNet20` (bn, ln or none)."""
    kind = norm_kind(model.stages["stem"][1])
    bias = kind == "none"
    axes: Axes = conv("stages.stem.0", "stage1", None, bias) | norm("stages.stem.1", "stage1", kind)
    acts: dict[str, list[str]] = {"stage1": ["stages.stem"]}
    stream = "stage1"
    for name, block in model.stages.items():
        if not name.startswith("layer"):
            continue
        out = f"stage{name[5]}"
        inner = f"{name}.inner"
        prefix = f"stages.{name}"
        axes |= conv(f"{prefix}.conv1", inner, stream, bias) | norm(f"{prefix}.norm1", inner, kind)
        axes |= conv(f"{prefix}.conv2", out, inner, bias) | norm(f"{prefix}.norm2", out, kind)
        if isinstance(block.shortcut, nn.Sequential):
            axes |= conv(f"{prefix}.shortcut.0", out, stream, bias)
            axes |= norm(f"{prefix}.shortcut.1", out, kind)
        acts.setdefault(out, []).append(prefix)
        acts[inner] = [f"{prefix}.norm1" if kind != "none" else f"{prefix}.conv1"]
        stream = out
    axes |= dense("stages.head", None, stream)
    return build_spec(axes, model, {p: tuple(v) for p, v in acts.items()})


def spec_for(model: nn.Module) -> PermutationSpec:
    """The hand-written spec for a stitchwork model, else one inferred by torch.fx.

    Raises
    ------
    SpecError
        When the model has no hand-written spec and fx inference fails; the message
        names the operation that blocked inference.
    """
    if isinstance(model, MLP):
        return mlp_spec(model)
    if isinstance(model, (Tiny10, VGG)):
        return chain_spec(model)
    if isinstance(model, ResNet20):
        return resnet20_spec(model)
    from .fx_spec import infer_spec  # deferred: fx tracing is only needed for other models

    try:
        return infer_spec(model)
    except SpecError as err:
        raise SpecError(
            f"{type(model).__name__} has no hand-written permutation spec (those exist for "
            f"MLP, Tiny10, VGG, ResNet20) and fx inference failed: {err}"
        ) from err
