"""Infer a :class:`PermutationSpec` from a torch.fx trace of any model.

Every tensor in the graph gets a *channel group* (the units on its feature axis, axis 1).
Conv and Linear layers split their input group from a new output group; norms,
activations, pooling and depthwise convs keep the group; a residual ``+`` or an
elementwise ``*`` (squeeze-excitation) joins (unions) the groups of its operands. Groups
joined to the model's input or output are not permuted.

``flatten(x, 1)`` (or ``x.view(n, -1)``) of a permuted ``(n, C, H, W)`` map keeps the group
*in blocks*: the channel-major vector holds unit ``c`` at ``c·H·W + s``, so the next
Linear's input axis is permuted by the block expansion of the channels' permutation (a
VGG's first classifier layer; see :func:`stitchwork.axes.expand_index`). Anything else
(concatenation, grouped convs, other reshapes of a permuted map, …) stops the inference
with a :class:`SpecError` that names the blocking op.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torchvision.ops import stochastic_depth

from ..utils.modules import eval_mode, model_device
from .spec import Axes, PermutationSpec, SpecError, build_spec

#: Modules and functions that act on each unit separately (the group passes through).
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Hardswish, nn.Hardsigmoid,
)
POINTWISE_MODULES = (
    *ACTIVATIONS, nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
POINTWISE_FUNCTIONS = {
    torch.relu, F.relu, F.relu6, F.gelu, F.silu, F.hardswish, F.hardsigmoid, torch.sigmoid, torch.tanh, F.dropout,
    F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, stochastic_depth,  # drops whole samples, not units
}
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)
FIXED = ("input", "output")  # names of the two groups that may not be permuted


class _Flow(NamedTuple):
    """What a tensor carries on axis 1: a channel group, each unit repeated ``block`` times
    consecutively (``block > 1`` after flattening a map with positions)."""

    group: str
    block: int = 1


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


def _shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def _flatten(node: fx.Node, groups: _Groups, flow: _Flow, start: int, end: int) -> _Flow:
    """``flatten(x, start, end)``: a fixed group stays fixed; a permuted one keeps its units
    on axis 1, in blocks of the positions folded into it when ``start`` is 1 (channel-major
    ``c·H·W + s``), and is refused when the samples' axis 0 is folded in."""
    shape = _shape(node.args[0])
    start, end = start % len(shape), end % len(shape)
    if groups.find(flow.group) in FIXED or start == end or start >= 2:
        return flow
    if start == 0:
        raise _blocked(node, f"flattening dims {start}..{end} of a permuted map of shape {shape} mixes "
                             "units with samples")  # fmt: skip
    return _Flow(flow.group, flow.block * math.prod(shape[2 : end + 1]))


def _reshape(node: fx.Node, groups: _Groups, flow: _Flow) -> _Flow:
    """``view``/``reshape``: a fixed group stays fixed; a permuted map may only reshape its
    positions (axes 0 and 1 kept) or become ``(n, features)`` (then it is ``flatten(x, 1)``)."""
    before, after = _shape(node.args[0]), _shape(node)
    if groups.find(flow.group) in FIXED or (len(after) >= 2 and after[:2] == before[:2]):
        return flow
    if len(before) >= 2 and after == (before[0], math.prod(before[1:])):
        return _flatten(node, groups, flow, 1, -1)
    raise _blocked(node, f"reshaping a permuted map of shape {before} to {after}")


def _reduces_positions_only(node: fx.Node) -> bool:
    """``x.mean(dims)`` over positions only (dims >= 2, e.g. a global average pool)."""
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    rank = len(_shape(node.args[0]))
    dims = [dims] if isinstance(dims, int) else dims
    return dims is not None and all(d % rank >= 2 for d in dims)


def _flatten_dims(node: fx.Node) -> tuple[int, int]:
    """``(start_dim, end_dim)`` of a ``torch.flatten`` call or ``Tensor.flatten`` method."""
    given = dict(zip(("start_dim", "end_dim"), node.args[1:], strict=False)) | node.kwargs
    dims = {"start_dim": 0, "end_dim": -1} | given
    return int(dims["start_dim"]), int(dims["end_dim"])


class _Inference:
    """One pass over the graph, filling ``axes`` and the group of every node."""

    def __init__(self, gm: fx.GraphModule):
        self.gm, self.groups = gm, _Groups()
        self.node_flow: dict[fx.Node, _Flow] = {}
        self.param_axes: dict[str, list[str | None]] = {}
        self.blocks: dict[tuple[str, int], int] = {}
        self.module_flows: list[tuple[str, nn.Module, _Flow]] = []  # (name, module, output flow)

    def set_axis(self, key: str, ndim: int, axis: int, flow: _Flow) -> None:
        axes = self.param_axes.setdefault(key, [None] * ndim)
        axes[axis] = flow.group if axes[axis] is None else self.groups.union(axes[axis], flow.group)
        if self.blocks.setdefault((key, axis), flow.block) != flow.block:
            raise SpecError(f"cannot infer a permutation spec: axis {axis} of {key!r} is read in blocks "
                            f"of {self.blocks[key, axis]} and of {flow.block}")  # fmt: skip

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.node_flow[node] = _Flow("input")
            elif node.op == "output":
                self.groups.union(self.flow_of(node, node.args[0]).group, "output")
            elif node.op == "call_module":
                self.node_flow[node] = self.module(node, self.gm.get_submodule(node.target))
            elif node.op in ("call_function", "call_method") and "tensor_meta" not in node.meta:
                continue  # a size or shape, not a tensor (``x.view(x.size(0), -1)``)
            elif node.op in ("call_function", "call_method"):
                self.node_flow[node] = self.function(node)
            else:
                raise _blocked(node, f"unsupported graph op {node.op!r}")

    def flow_of(self, node: fx.Node, arg: object) -> _Flow:
        if not isinstance(arg, fx.Node) or arg not in self.node_flow:
            raise _blocked(node, f"input {arg!r} is not a traced tensor")
        return self.node_flow[arg]

    def module(self, node: fx.Node, mod: nn.Module) -> _Flow:
        flow = self.flow_of(node, node.args[0])
        name = node.target
        if isinstance(mod, nn.Conv2d) and mod.groups == mod.in_channels == mod.out_channels > 1:
            out = flow  # depthwise: channel c reads only channel c
            self.set_axis(f"{name}.weight", mod.weight.dim(), 0, flow)
            if mod.bias is not None:
                self.set_axis(f"{name}.bias", 1, 0, flow)
        elif isinstance(mod, (nn.Linear, nn.Conv2d)):
            if isinstance(mod, nn.Conv2d) and mod.groups != 1:
                raise _blocked(node, f"grouped convolution (groups={mod.groups})")
            if isinstance(mod, nn.Linear) and len(_shape(node.args[0])) != 2:
                raise _blocked(node, "Linear on a tensor with more than one feature axis")
            out = _Flow(self.groups.new(name))
            self.set_axis(f"{name}.weight", mod.weight.dim(), 0, out)
            self.set_axis(f"{name}.weight", mod.weight.dim(), 1, flow)
            if mod.bias is not None:
                self.set_axis(f"{name}.bias", 1, 0, out)
        elif isinstance(mod, NORMS):
            if isinstance(mod, nn.GroupNorm) and mod.num_groups not in (1, mod.num_channels):
                raise _blocked(node, f"GroupNorm with {mod.num_groups} groups ties units together")
            for key, tensor in list(mod.named_parameters()) + list(mod.named_buffers()):
                if tensor.dim() == 1:
                    self.set_axis(f"{name}.{key}", 1, 0, flow)
            out = flow
        elif isinstance(mod, POINTWISE_MODULES):
            out = flow
        elif isinstance(mod, nn.Flatten):
            out = _flatten(node, self.groups, flow, mod.start_dim, mod.end_dim)
        else:
            raise _blocked(node, f"module {type(mod).__name__} has no permutation rule")
        self.module_flows.append((name, mod, out))
        return out

    def function(self, node: fx.Node) -> _Flow:
        target = node.target
        inputs = [self.groups.find(self.node_flow[a].group) for a in node.all_input_nodes if a in self.node_flow]
        if inputs and all(g in FIXED for g in inputs):
            return _Flow(inputs[0])  # computed from unpermuted tensors only (e.g. the input's preprocessing)
        if target in POINTWISE_FUNCTIONS or target in ("relu", "sigmoid", "tanh"):
            return self.flow_of(node, node.args[0])
        if target in (operator.add, operator.iadd, torch.add, "add", operator.mul, operator.imul, "mul"):
            return self.elementwise(node)
        if target in (torch.flatten, "flatten"):
            return _flatten(node, self.groups, self.flow_of(node, node.args[0]), *_flatten_dims(node))
        if target in (torch.reshape, "reshape", "view"):
            return _reshape(node, self.groups, self.flow_of(node, node.args[0]))
        if target in (torch.mean, "mean") and _reduces_positions_only(node):
            return self.flow_of(node, node.args[0])
        raise _blocked(node, f"function {getattr(target, '__name__', target)} has no permutation rule")

    def elementwise(self, node: fx.Node) -> _Flow:
        """A sum or product of tensors (a residual, a squeeze-excitation scale): one group for all,
        if every operand has its units on axis 1 (same rank, same size there, same blocks)."""
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        flows = [self.flow_of(node, a) for a in tensors]
        shapes = [_shape(a) for a in tensors]
        if len({(len(s), s[1] if len(s) > 1 else None, f.block) for s, f in zip(shapes, flows, strict=True)}) > 1:
            raise _blocked(node, f"{node.target.__name__ if callable(node.target) else node.target} of tensors "
                                 f"of shapes {shapes} that do not line up their units on axis 1")  # fmt: skip
        group = flows[0].group
        for flow in flows[1:]:
            group = self.groups.union(group, flow.group)
        return _Flow(group, flows[0].block)


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
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        ShapeProp(gm).propagate(torch.zeros(2, *shape, device=model_device(model), dtype=dtype))
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
    blocks = {(k, a): b for (k, a), b in inference.blocks.items() if b > 1 and axes[k][a] is not None}
    # activation points: prefer activation functions, then norms, then conv/linear outputs;
    # never a flattened map (its axis 1 holds units in blocks, not units)
    ranked: dict[str, list[tuple[int, str]]] = {}
    for module_name, mod, flow in inference.module_flows:
        kinds = (ACTIVATIONS, NORMS, (nn.Linear, nn.Conv2d))
        rank = next((r for r, kind in enumerate(kinds) if isinstance(mod, kind)), None)
        if name(flow.group) is not None and rank is not None and flow.block == 1:
            ranked.setdefault(name(flow.group), []).append((rank, module_name))
    activations = {
        p: tuple(m for r, m in points if r == min(r for r, _ in points)) for p, points in ranked.items()
    }
    return build_spec(axes, model, activations, blocks)
