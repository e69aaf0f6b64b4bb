"""Any traceable ``nn.Module`` as a :class:`CutModel`, cut by module path.

torch.fx traces the module once; every node remembers the module paths it was created in.
A module path is offered as a cut point only where exactly one tensor flows from the graph
before its last node to the graph after it (parameters and buffers read with ``get_attr``
do not count: each stage reads them itself; nor do optional inputs left at their defaults).
A cut inside a residual block is refused: the
skip connection carries a second tensor across it. The graph is then split at the chosen
nodes into consecutive stages, so ``back(front(x))`` runs the traced graph's own operations in
its own order and equals ``module(x)`` exactly.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import fx, nn

from .base import CutModel


class CutRefusedError(ValueError):
    """A module path where the model cannot be cut (with the reason)."""


#: Modules whose forward branches on ``self.training`` outside ``torch.nn`` (torchvision's
#: stochastic depth, timm's drop path): traced through, the mode at trace time would be
#: frozen into the graph (rows dropped in eval mode too), so they stay modules in it.
TRAINING_MODE_LEAVES = frozenset({"StochasticDepth", "DropPath"})


class _ScopeTracer(fx.Tracer):
    """symbolic_trace that tags every node with the module paths it was created in."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m).__name__ in TRAINING_MODE_LEAVES or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        self.stack.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.stack.pop()

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["scopes"] = tuple(self.stack)
        return node


def trace(module: nn.Module) -> fx.GraphModule:
    """The fx graph of ``module`` with each node's module paths in ``node.meta['scopes']``."""
    tracer = _ScopeTracer()
    graph = tracer.trace(module)
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def stage_name(path: str) -> str:
    """A cut point's name: its module path with dots as underscores (``layer3.1`` -> ``layer3_1``)."""
    return path.replace(".", "_")


def _body(graph: fx.Graph) -> list[fx.Node]:
    return [n for n in graph.nodes if n.op not in ("placeholder", "output")]


def _crossing(nodes: list[fx.Node], k: int, position: dict[fx.Node, int]) -> list[fx.Node]:
    """Values made at or before ``nodes[k]`` (inputs included) that are used after it."""
    live = []
    for node in nodes[: k + 1]:
        if node.op == "get_attr" or (node.op == "placeholder" and node.args):
            continue  # parameters, and optional inputs left at their default, are no flow
        if any(position.get(user, len(nodes)) > k for user in node.users):
            live.append(node)
    return live


def boundaries(traced: fx.GraphModule) -> tuple[dict[str, int], dict[str, str]]:
    """Module paths where one tensor flows on (path -> index of its last node among the body's
    nodes), and the refused ones with their reason."""
    nodes = [n for n in traced.graph.nodes if n.op != "output"]
    position = {n: i for i, n in enumerate(nodes)}
    last: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for path in node.meta.get("scopes", ()):
            last[path] = i
    valid, refused = {}, {}
    for path, k in sorted(last.items(), key=lambda item: item[1]):
        crossing = _crossing(nodes, k, position)
        if crossing == [nodes[k]]:
            valid[path] = k
        else:
            others = [n.name for n in crossing if n is not nodes[k]]
            refused[path] = (f"more than one tensor flows past {path!r}: besides its output, "
                             f"{', '.join(others) or 'nothing'} is used after it (a skip or residual "
                             "connection around it); cut at the enclosing block instead")  # fmt: skip
    return valid, refused


def _stage(traced: fx.GraphModule, nodes: list[fx.Node], start: int, stop: int) -> fx.GraphModule:
    """The graph of ``nodes[start:stop]`` as a module taking the value made just before ``start``."""
    graph, env = fx.Graph(), {}
    if start == 0:
        env.update({n: graph.node_copy(n) for n in nodes if n.op == "placeholder"})  # defaults kept
    else:
        env[nodes[start - 1]] = graph.placeholder("x")

    def value(n: fx.Node):
        if n not in env:  # a parameter or buffer read earlier: read it here too; an optional
            # input (timm's attn_mask=None) keeps its default
            env[n] = n.args[0] if n.op == "placeholder" else graph.node_copy(n, value)
        return env[n]

    for node in nodes[start:stop]:
        if node.op != "placeholder":
            env[node] = graph.node_copy(node, value)
    graph.output(value(nodes[stop - 1]))
    return fx.GraphModule(traced, graph)


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def default_paths(module: nn.Module, valid: dict[str, int]) -> list[str]:
    """The block boundaries offered by default: the module's children and the members of its
    containers (``layer2.1``, ``features.8``, ``encoder.layers.encoder_layer_1``, ``blocks.3``),
    at most three levels deep, one name per boundary (the deepest: ``layer2.1`` rather than
    ``layer2`` when the two end in the same tensor)."""
    modules = dict(module.named_modules())
    by_node: dict[int, str] = {}
    for path, k in valid.items():
        parent = path.rpartition(".")[0]
        offered = parent == "" or isinstance(modules.get(parent), _CONTAINERS)
        if offered and path.count(".") <= 2 and path.count(".") >= by_node.get(k, "").count("."):
            by_node[k] = path
    return [by_node[k] for k in sorted(by_node)]


def _pick(module: nn.Module, valid: dict[str, int], refused: dict[str, str],
          cut_points: Sequence[str] | None) -> list[str]:  # fmt: skip
    if cut_points is None:
        return default_paths(module, valid)
    names = {stage_name(p): p for p in valid}
    picked = []
    for requested in cut_points:
        path = names.get(stage_name(str(requested)))
        if path is None:
            if str(requested) in refused:
                raise CutRefusedError(f"cut point {requested!r} is refused: {refused[str(requested)]}")
            close = difflib.get_close_matches(str(requested), list(valid), n=5)
            raise CutRefusedError(f"unknown cut point {requested!r}" + (f" (close: {', '.join(close)})" if close else "")
                                  + f"; valid module paths: {', '.join(valid)}")  # fmt: skip
        picked.append(path)
    return sorted(set(picked), key=lambda p: valid[p])


def module_stages(module: nn.Module, cut_points: Sequence[str] | None = None) -> OrderedDict[str, nn.Module]:
    """``module`` split at ``cut_points`` (module paths; default: every block boundary) into
    consecutive stages named by :func:`stage_name`, the rest of the graph as ``output``."""
    traced = trace(module)
    valid, refused = boundaries(traced)
    paths = _pick(module, valid, refused, cut_points)
    if not paths:
        raise CutRefusedError(f"{type(module).__name__} has no module path where one tensor flows on")
    nodes = [n for n in traced.graph.nodes if n.op != "output"]
    (result,) = [n for n in traced.graph.nodes if n.op == "output"][0].args
    stops = [valid[p] + 1 for p in paths] + [nodes.index(result) + 1]
    stages, start = OrderedDict(), 0
    for name, stop in zip([stage_name(p) for p in paths] + ["output"], stops, strict=True):
        if stop <= start:
            continue
        stages[name] = _stage(traced, nodes, start, stop)
        start = stop
    return stages


class ModuleCutModel(CutModel):
    """A CutModel over any traceable module; cut points are module paths (dots as underscores).

    Parameters
    ----------
    module
        The network, mapping a batch of inputs to logits.
    input_shape
        Shape of one input example.
    cut_points
        Module paths to offer (``layer2``, ``layer3.1``, ``encoder.layers.encoder_layer_1``);
        default every block boundary down to two levels where a single tensor flows.
    """

    def __init__(self, module: nn.Module, input_shape: Sequence[int], cut_points: Sequence[str] | None = None):
        stages = module_stages(module, cut_points)
        if len(stages) < 2:
            raise CutRefusedError(f"{type(module).__name__}: the requested cut points leave no stage after them")
        super().__init__(stages, input_shape)


@torch.no_grad()
def max_split_error(model: CutModel, module: nn.Module, x: torch.Tensor) -> float:
    """Largest ``|stages(x) - module(x)|``: 0 when the split is exact."""
    return float((model(x) - module(x)).abs().max())
