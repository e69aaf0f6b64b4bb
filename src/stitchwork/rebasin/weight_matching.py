"""Weight matching (Git Re-Basin, Ainsworth et al. 2023): coordinate ascent on ⟨W_A, π(W_B)⟩.

Each sweep visits the permutations in a seeded random order; for permutation ``p`` it
forms ``S = Σ W_A · π(W_B)ᵀ`` over every parameter axis ``p`` touches (the other
permutations already applied to B) and solves the linear assignment problem exactly with
scipy's ``linear_sum_assignment``. Products are float64, on the models' device: torch on
a GPU, numpy on the CPU (there numpy's BLAS calls cost less per call than torch's, which
is what a sweep over many small matrices pays for). BatchNorm running statistics are
permuted but not matched.

Speed (``benchmarks/bench_rebasin_weight_matching.py``): the textbook loop re-permutes and
reshapes every tensor of ``p``'s terms on every visit. Here every term is laid out once with
``p``'s axis first, B's with the current permutations applied, and its product is cached
until a permutation it depends on changes; a change re-indexes only the terms it touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .apply import permute_tensor
from .matching import check_compatible
from .spec import Permutation, PermutationSpec

Array = Any  # a numpy array (CPU) or a torch tensor (GPU)


@dataclass(frozen=True)
class _Ops:
    """The few array operations matching needs, for numpy arrays or torch tensors."""

    take: Callable[[Array, Array, int], Array]  # (x, index, axis), a new array
    axis_first: Callable[[Array, int], Array]  # a contiguous array with that axis moved first
    index: Callable[[np.ndarray], Array]  # an int index array as this backend's index
    numpy: Callable[[Array], np.ndarray]


_NUMPY = _Ops(
    take=lambda x, i, axis: np.take(x, i, axis=axis),
    axis_first=lambda x, axis: np.ascontiguousarray(np.moveaxis(x, axis, 0)),
    index=lambda i: i, numpy=lambda x: x,
)


def _torch_ops(device: torch.device) -> _Ops:
    return _Ops(
        take=lambda x, i, axis: x.index_select(axis, i),
        axis_first=lambda x, axis: x.movedim(axis, 0).contiguous(),
        index=lambda i: torch.as_tensor(i, device=device), numpy=lambda x: x.cpu().numpy(),
    )


class _Term:
    """One parameter seen from one permutation ``p``: A's and B's tensor with ``p``'s axis first.

    B's keeps ``p``'s own units in their original order and every other permuted axis in
    the current permutations' order, so ``a @ b.T`` is the textbook similarity term.
    The product is kept with the versions of the permutations it depends on.
    """

    __slots__ = ("key", "a", "b", "others", "stamp", "product")

    def __init__(self, key: str, a: Array, b: Array, others: tuple[tuple[str, int], ...]):
        self.key, self.a, self.b, self.others = key, a.reshape(len(a), -1), b, others
        self.stamp: tuple[int, ...] | None = None
        self.product: Array = None

    def b_matrix(self) -> Array:
        return self.b.reshape(len(self.b), -1)


class _Layouts:
    """Every permutation's terms, their cached products, and who re-indexes whom.

    A term is multiplied again only when a permutation on one of its other axes has
    changed since: terms with none (norm and bias vectors, first-layer weights) once per
    matching, and in late sweeps, when few permutations still move, almost nothing.
    """

    def __init__(self, spec: PermutationSpec, a: Mapping[str, Array], b: Mapping[str, Array], ops: _Ops):
        self.ops = ops
        self.terms: dict[str, list[_Term]] = {}
        #: permutation q -> the (term, axis of q in term.b) that q re-indexes
        self.touches: dict[str, list[tuple[_Term, int]]] = {q: [] for q in spec.perms}
        split = {k: _split_blocks(spec, k, a[k], b[k]) for k in a}
        for p in spec.perms:
            terms = []
            for key, old_axis in spec.perm_to_axes[p]:
                if key not in a:  # buffers are permuted, not matched
                    continue
                a_key, b_key, key_axes, where = split[key]
                axis = where[old_axis]
                rest = [q for i, q in enumerate(key_axes) if i != axis]
                others = tuple((q, i + 1) for i, q in enumerate(rest) if q is not None)
                terms.append(_Term(key, ops.axis_first(a_key, axis), ops.axis_first(b_key, axis), others))
                for q, b_axis in others:
                    self.touches[q].append((terms[-1], b_axis))
            self.terms[p] = terms
        #: how often each permutation changed; a cached product is valid while its stamp holds
        self.version = dict.fromkeys(spec.perms, 0)
        seen: set[str] = set()
        #: one (permutation, term) per matched key, and the keys no permutation touches
        self.first_terms = [
            (p, t) for p, terms in self.terms.items() for t in terms if not (t.key in seen or seen.add(t.key))
        ]
        self.unpermuted = float(sum((a[k] * b[k]).sum() for k in a if k not in seen))

    def similarity(self, p: str) -> np.ndarray:
        """``(n, n)``: entry ``[i, j]`` = similarity of A's unit i and B's (original) unit j."""
        total = None
        for term in self.terms[p]:
            stamp = tuple(self.version[q] for q, _ in term.others)
            if term.stamp != stamp:
                term.stamp, term.product = stamp, term.a @ term.b_matrix().T
            total = term.product + 0 if total is None else total.__iadd__(term.product)
        return self.ops.numpy(total)

    def objective(self, perm: Mapping[str, np.ndarray]) -> float:
        """``Σ ⟨W_A, π(W_B)⟩`` over the matched parameters, each counted once."""
        return self.unpermuted + float(sum(
            (t.a * self.ops.take(t.b_matrix(), self.ops.index(perm[p]), 0)).sum() for p, t in self.first_terms
        ))

    def reorder(self, q: str, sigma: np.ndarray) -> None:
        """Re-index axis ``q`` of B's other terms by ``sigma`` (new unit i = current unit sigma[i])."""
        self.version[q] += 1
        sigma = self.ops.index(sigma)
        for term, b_axis in self.touches[q]:
            term.b = self.ops.take(term.b, sigma, b_axis)


def _split_blocks(
    spec: PermutationSpec, key: str, a: Array, b: Array
) -> tuple[Array, Array, tuple[str | None, ...], list[int]]:
    """A's and B's ``key`` with every blocked axis split into ``(units, block)``, the axes of
    that layout (the block axis unpermuted) and where each original axis went.

    A Linear reading a flattened ``(C, H, W)`` map, ``(out, C·H·W)``, becomes ``(out, C, H·W)``:
    its similarity term for the channels' permutation sums over ``out`` and the positions.
    """
    shape: list[int] = []
    axes: list[str | None] = []
    where: list[int] = []
    for axis, (size, q) in enumerate(zip(a.shape, spec.axes_to_perm[key], strict=True)):
        where.append(len(shape))
        block = spec.block(key, axis)
        shape += [size // block, block] if block > 1 else [size]
        axes += [q, None] if block > 1 else [q]
    return a.reshape(shape), b.reshape(shape), tuple(axes), where


def weight_matching(
    spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
    max_sweeps: int = 100, seed: int = 0, init: Permutation | None = None,
    history: list[float] | None = None,
) -> Permutation:
    """Permutation of B's units maximising ``Σ ⟨W_A, π(W_B)⟩`` over the spec's parameters.

    Parameters
    ----------
    max_sweeps
        Stop after this many sweeps even if the last one still gained.
    seed
        Seeds the random visiting order of each sweep.
    init
        Starting permutation (default: identities).
    history
        If given, the objective after each sweep is appended to it.
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    check_compatible(spec, state_a, state_b)
    layouts = _layouts(spec, state_a, state_b, init)
    perm = {p: np.arange(n) for p, n in spec.perm_sizes.items()}
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(max_sweeps):
        gained = _sweep(spec.perms, layouts, perm, torch.randperm(len(spec.perms), generator=gen).tolist())
        if history is not None:
            history.append(layouts.objective(perm))
        if not gained:
            break
    found = {p: torch.as_tensor(v, dtype=torch.long) for p, v in perm.items()}
    if init is not None:
        found = {p: init[p].cpu()[v] for p, v in found.items()}
    return found


def _layouts(
    spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
    init: Permutation | None,
) -> _Layouts:
    """Float64 copies of the matched parameters on A's device (numpy on the CPU), laid out."""
    device = next(iter(state_a.values())).device
    a = {k: v.detach().to(device, torch.float64) for k, v in state_a.items() if k not in spec.buffers}
    b = {k: v.detach().to(device, torch.float64) for k, v in state_b.items() if k not in spec.buffers}
    if init is not None:  # start from B permuted by init; the result composes init with the rest
        b = {k: permute_tensor(spec, init, k, v) for k, v in b.items()}
    ops = _NUMPY if device.type == "cpu" else _torch_ops(device)
    if ops is _NUMPY:
        a, b = ({k: v.numpy() for k, v in s.items()} for s in (a, b))
    return _Layouts(spec, a, b, ops)


def _sweep(names: list[str], layouts: _Layouts, perm: dict[str, np.ndarray], order: list[int]) -> bool:
    """One coordinate-ascent sweep in ``order``: exact LAP per permutation; did any gain?"""
    gained = False
    for index in order:
        p = names[index]
        sim = layouts.similarity(p)
        rows, cols = linear_sum_assignment(sim, maximize=True)
        old = sim[rows, perm[p]].sum()
        if sim[rows, cols].sum() - old > 1e-12 * (1.0 + abs(old)):
            layouts.reorder(p, np.argsort(perm[p])[cols])  # relative to the current one
            gained, perm[p] = True, cols
    return gained


class WeightMatcher:
    """:class:`~stitchwork.rebasin.matching.Matcher` running :func:`weight_matching`.

    ``restarts`` runs it from ``restarts`` seeded visiting orders (seeds ``seed``,
    ``seed + 1``, ...) and keeps the highest objective (the first of equals): coordinate
    ascent ends in a local optimum, and optima of nearly equal objective can have very
    different barriers, so :meth:`restart_candidates` gives every restart for reporting a
    spread. ``restarts=1`` is plain :func:`weight_matching` with ``seed``.
    """

    def __init__(self, max_sweeps: int = 100, seed: int = 0, restarts: int = 1):
        if max_sweeps < 1:
            raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
        if isinstance(restarts, bool) or int(restarts) != restarts or restarts < 1:
            raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
        self.max_sweeps, self.seed, self.restarts = int(max_sweeps), int(seed), int(restarts)

    def restart_candidates(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec
    ) -> list[dict[str, Any]]:
        """Every restart in seed order: ``{"seed", "objective", "perm"}`` (Σ⟨W_A, π(W_B)⟩ at its end)."""
        out = []
        with torch.no_grad():
            state_a, state_b = model_a.state_dict(), model_b.state_dict()
            for seed in range(self.seed, self.seed + self.restarts):
                history: list[float] = []
                perm = weight_matching(spec, state_a, state_b, self.max_sweeps, seed, history=history)
                out.append({"seed": seed, "objective": history[-1], "perm": perm})
        return out

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation:
        return best_candidate(self.restart_candidates(model_a, model_b, spec))["perm"]


def best_candidate(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The restart with the highest objective (the earliest among equals)."""
    return max(candidates, key=lambda c: c["objective"])
