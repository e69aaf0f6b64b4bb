"""Weight matching (Git Re-Basin, Ainsworth et al. 2023): coordinate ascent on ⟨W_A, π(W_B)⟩.

Each sweep visits the permutations in a seeded random order; for permutation ``p`` it
sums ``W_A · π(W_B)ᵀ`` over every parameter axis ``p`` touches (the other permutations
already applied to B) and solves the linear assignment problem exactly. Similarities are
float64 torch products on the models' device; the assignment is scipy's
``linear_sum_assignment``. BatchNorm running statistics are permuted but not matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .apply import identity_permutation, permute_tensor
from .matching import check_compatible
from .spec import Permutation, PermutationSpec


def _fixed_side(
    spec: PermutationSpec, state_a: Mapping[str, torch.Tensor]
) -> dict[str, list[tuple[str, int, torch.Tensor]]]:
    """Per permutation, its ``(key, axis, W_A as (n, rest))`` terms: A never changes, so once."""
    terms: dict[str, list[tuple[str, int, torch.Tensor]]] = {}
    for p in spec.perms:
        n = spec.perm_sizes[p]
        terms[p] = [
            (key, axis, state_a[key].movedim(axis, 0).reshape(n, -1))  # (n, rest)
            for key, axis in spec.perm_to_axes[p]
            if key not in spec.buffers
        ]
    return terms


def _similarity(
    spec: PermutationSpec, perm: Permutation, p: str,
    fixed: list[tuple[str, int, torch.Tensor]], state_b: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """``(n, n)`` float64: entry ``[i, j]`` = similarity of A's unit i and B's unit j."""
    n = spec.perm_sizes[p]
    sim = torch.zeros(n, n, dtype=torch.float64, device=next(iter(state_b.values())).device)
    for key, axis, w_a in fixed:
        w_b = permute_tensor(spec, perm, key, state_b[key], except_axis=axis)
        sim.addmm_(w_a, w_b.movedim(axis, 0).reshape(n, -1).T)
    return sim


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
    device = next(iter(state_a.values())).device
    a = {k: v.to(device, torch.float64) for k, v in state_a.items() if k not in spec.buffers}
    b = {k: v.to(device, torch.float64) for k, v in state_b.items() if k not in spec.buffers}
    perm = {p: v.to(device) for p, v in (init or identity_permutation(spec)).items()}
    gen = torch.Generator().manual_seed(int(seed))
    names = spec.perms
    fixed = _fixed_side(spec, a)
    for _ in range(max_sweeps):
        gained = False
        for index in torch.randperm(len(names), generator=gen).tolist():
            p = names[index]
            sim = _similarity(spec, perm, p, fixed[p], b).cpu().numpy()
            rows, cols = linear_sum_assignment(sim, maximize=True)
            old = sim[rows, perm[p].cpu().numpy()].sum()
            if sim[rows, cols].sum() - old > 1e-12 * (1.0 + abs(old)):
                gained, perm[p] = True, torch.as_tensor(cols, device=device)
        if history is not None:
            history.append(_objective(spec, perm, a, b))
        if not gained:
            break
    return {p: v.cpu() for p, v in perm.items()}


def _objective(spec: PermutationSpec, perm: Permutation, a: Mapping, b: Mapping) -> float:
    """``Σ ⟨W_A, π(W_B)⟩`` over the matched parameters."""
    return float(sum((a[k] * permute_tensor(spec, perm, k, b[k])).sum() for k in a))


class WeightMatcher:
    """:class:`~stitchwork.rebasin.matching.Matcher` running :func:`weight_matching`."""

    def __init__(self, max_sweeps: int = 100, seed: int = 0):
        if max_sweeps < 1:
            raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
        self.max_sweeps, self.seed = int(max_sweeps), int(seed)

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation:
        with torch.no_grad():
            return weight_matching(
                spec, model_a.state_dict(), model_b.state_dict(), self.max_sweeps, self.seed
            )
