"""Infer a :class:`PermutationSpec` from a torch.fx trace of any model.

Every tensor in the graph gets a *channel group* (the units on its feature axis, axis 1).
Conv and Linear layers split their input group from a new output group; norms,
activations and pooling keep the group; a residual ``+`` joins (unions) the groups of its
operands. Groups joined to the model's input or output are not permuted. Anything else
(concatenation, grouped convs, flattening a permuted map with positions, …) stops the
inference with a :class:`SpecError` that names the blocking op.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..utils.modules import eval_mode, model_device
from .spec import Axes, PermutationSpec, SpecError, build_spec

#: Modules and functions that act on each unit separately (the group passes through).
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU)
POINTWISE_MODULES = (
    *ACTIVATIONS, nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
)
POINTWISE_FUNCTIONS = {torch.relu, F.relu, F.gelu, torch.sigmoid, torch.tanh, F.dropout}
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)
FIXED = ("input", "output")  # names of the two groups that may not be permuted


class _Groups:
    """Union-find over channel groups named by the module that created them.

    A union keeps a fixed root if there is one, else the group created first, so a
    residual stream is named after its first producer.
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {name: name for name in FIXED}
        self.order: dict[str, int] = {name: -1 for name in FIXED}

    def new(self, name: str) -> str:
        self.parent.setdefault(name, name)
        self.order.setdefault(name, len(self.order))
        return name

    def find(self, g: str) -> str:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            keep, drop = (ra, rb) if self.order[ra] <= self.order[rb] else (rb, ra)
            self.parent[drop] = keep
        return self.find(a)


def _blocked(node: fx.Node, why: str) -> SpecError:
    return SpecError(f"cannot infer a permutation spec: {why} at node {node.name!r} ({node.target})")


def _flatten_group(node: fx.Node, groups: _Groups, g: str) -> str:
    """A flatten keeps the group only if it is fixed or the map has one position."""
    shape = node.args[0].meta["tensor_meta"].shape
    if groups.find(g) in FIXED or all(s == 1 for s in shape[2:]):
        return g
    raise _blocked(node, f"flattening a permuted map of shape {tuple(shape)} mixes units with positions")


class _Inference:
    """One pass over the graph, filling ``axes`` and the group of every node."""

    def __init__(self, gm: fx.GraphModule):
        self.gm, self.groups = gm, _Groups()
        self.node_group: dict[fx.Node, str] = {}
        self.param_axes: dict[str, list[str | None]] = {}
        self.module_groups: list[tuple[str, nn.Module, str]] = []  # (name, module, out group)

    def set_axis(self, key: str, ndim: int, axis: int, group: str) -> None:
        axes = self.param_axes.setdefault(key, [None] * ndim)
        axes[axis] = group if axes[axis] is None else self.groups.union(axes[axis], group)

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.node_group[node] = "input"
            elif node.op == "output":
                self.groups.union(self.group_of(node, node.args[0]), "output")
            elif node.op == "call_module":
                self.node_group[node] = self.module(node, self.gm.get_submodule(node.target))
            elif node.op in ("call_function", "call_method"):
                self.node_group[node] = self.function(node)
            else:
                raise _blocked(node, f"unsupported graph op {node.op!r}")

    def group_of(self, node: fx.Node, arg: object) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.node_group:
            raise _blocked(node, f"input {arg!r} is not a traced tensor")
        return self.node_group[arg]

    def module(self, node: fx.Node, mod: nn.Module) -> str:
        g_in = self.group_of(node, node.args[0])
        name = node.target
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            if isinstance(mod, nn.Conv2d) and mod.groups != 1:
                raise _blocked(node, f"grouped convolution (groups={mod.groups})")
            if isinstance(mod, nn.Linear) and len(node.args[0].meta["tensor_meta"].shape) != 2:
                raise _blocked(node, "Linear on a tensor with more than one feature axis")
            g_out = self.groups.new(name)
            self.set_axis(f"{name}.weight", mod.weight.dim(), 0, g_out)
            self.set_axis(f"{name}.weight", mod.weight.dim(), 1, g_in)
            if mod.bias is not None:
                self.set_axis(f"{name}.bias", 1, 0, g_out)
        elif isinstance(mod, NORMS):
            if isinstance(mod, nn.GroupNorm) and mod.num_groups not in (1, mod.num_channels):
                raise _blocked(node, f"GroupNorm with {mod.num_groups} groups ties units together")
            for key, tensor in list(mod.named_parameters()) + list(mod.named_buffers()):
                if tensor.dim() == 1:
                    self.set_axis(f"{name}.{key}", 1, 0, g_in)
            g_out = g_in
        elif isinstance(mod, POINTWISE_MODULES):
            g_out = g_in
        elif isinstance(mod, nn.Flatten):
            g_out = _flatten_group(node, self.groups, g_in)
        else:
            raise _blocked(node, f"module {type(mod).__name__} has no permutation rule")
        self.module_groups.append((name, mod, g_out))
        return g_out

    def function(self, node: fx.Node) -> str:
        target = node.target
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        if target in POINTWISE_FUNCTIONS or target in ("relu", "sigmoid", "tanh"):
            return self.group_of(node, node.args[0])
        if target in (operator.add, operator.iadd, torch.add, "add", operator.mul, "mul"):
            groups = [self.group_of(node, a) for a in tensors]
            if target in (operator.mul, "mul") and len(groups) > 1:
                raise _blocked(node, "product of two tensors")
            out = groups[0]
            for g in groups[1:]:
                out = self.groups.union(out, g)
            return out
        if target in (torch.flatten, "flatten"):
            return _flatten_group(node, self.groups, self.group_of(node, node.args[0]))
        raise _blocked(node, f"function {getattr(target, '__name__', target)} has no permutation rule")


def infer_spec(model: nn.Module, input_shape: Sequence[int] | None = None) -> PermutationSpec:
    """Trace ``model`` with torch.fx and build its permutation spec.

    Parameters
    ----------
    input_shape
        Shape of one example; defaults to ``model.input_shape`` (stitchwork models).
    """
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise SpecError(f"{type(model).__name__} has no input_shape; pass input_shape")
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # noqa: BLE001 - fx raises many types for untraceable code
        raise SpecError(f"cannot infer a permutation spec: torch.fx cannot trace the model ({err})") from err
    with eval_mode(gm), torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(2, *shape, device=model_device(model)))
    inference = _Inference(gm)
    inference.run()
    return _to_spec(model, inference)


def _to_spec(model: nn.Module, inference: _Inference) -> PermutationSpec:
    """Resolve groups to permutation names (``None`` for fixed ones) and build the spec."""
    groups = inference.groups

    def name(g: str | None) -> str | None:
        root = groups.find(g) if g is not None else None
        return None if root is None or root in FIXED else root

    axes: Axes = {k: tuple(name(g) for g in v) for k, v in inference.param_axes.items()}
    for key, tensor in model.state_dict().items():
        axes.setdefault(key, (None,) * tensor.dim())
    # activation points: prefer activation functions, then norms, then conv/linear outputs
    ranked: dict[str, list[tuple[int, str]]] = {}
    for module_name, mod, g in inference.module_groups:
        kinds = (ACTIVATIONS, NORMS, (nn.Linear, nn.Conv2d))
        rank = next((r for r, kind in enumerate(kinds) if isinstance(mod, kind)), None)
        if name(g) is not None and rank is not None:
            ranked.setdefault(name(g), []).append((rank, module_name))
    activations = {
        p: tuple(m for r, m in points if r == min(r for r, _ in points)) for p, points in ranked.items()
    }
    return build_spec(axes, model, activations)
