"""Robustness of combinations to a perturbed matching (Mode Combinability).

A fraction ``q`` of each permutation's units is disturbed by random disjoint
transpositions; the barrier and the combination losses are then re-measured as
functions of ``q``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from .apply import permute_model
from .combine import LambdaSampler, combine_states, mean_lambda, sample_lambdas
from .combine_eval import evaluate_combinations, post_process_states, summarize
from .interpolate import PostProcess, curve_barriers, interpolation_curve
from .spec import Permutation, PermutationSpec


def check_fraction(q: float) -> float:
    """``q`` as a float, or a ValueError unless 0 <= q <= 1."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"perturbation fraction q must be in [0, 1], got {q!r}")
    return float(q)


def perturb_permutation(perm: Mapping[str, torch.Tensor], q: float, seed: int = 0) -> Permutation:
    """Swap ``⌊q·n/2⌋`` random disjoint pairs of entries of each permutation.

    About a fraction ``q`` of each permutation's units then map elsewhere (exactly
    ``2⌊q·n/2⌋`` of ``n``); reproducible by ``seed``.
    """
    check_fraction(q)
    gen = torch.Generator().manual_seed(int(seed))
    out: Permutation = {}
    for name, p in perm.items():
        n = len(p)
        pairs = int(q * n) // 2
        chosen = torch.randperm(n, generator=gen)[: 2 * pairs]
        left, right = chosen[:pairs], chosen[pairs:]
        new = p.clone()
        new[left], new[right] = p[right], p[left]
        out[name] = new
    return out


def moved_fraction(perm: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> float:
    """Fraction of all units whose image differs between two permutations."""
    moved = sum(int((perm[p] != other[p]).sum()) for p in perm)
    return moved / sum(len(v) for v in perm.values())


def fraction_grid(qs: Iterable[float]) -> Sequence[float]:
    """Validated list of perturbation fractions."""
    grid = [check_fraction(q) for q in qs]
    if not grid:
        raise ValueError("need at least one perturbation fraction q")
    return grid


def robustness_sweep(
    model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec, perm: Mapping[str, torch.Tensor],
    qs: Iterable[float], loaders: Mapping[str, Iterable], sampler: LambdaSampler | None = None,
    k: int = 8, seed: int = 0, num_points: int = 5, post: PostProcess | None = None,
) -> list[dict]:
    """Barriers (and combination losses, with a ``sampler``) of B aligned by a perturbed ``perm``.

    For each ``q``: ``perm`` perturbed by :func:`perturb_permutation`, B permuted by it,
    the interpolation curve on every loader, and — with ``sampler`` — ``k`` seeded
    combinations evaluated on the first loader (each post-processed at its mean λ).
    """
    rows = []
    first = next(iter(loaders))
    for q in fraction_grid(qs):
        perturbed = perturb_permutation(perm, q, seed)
        aligned = permute_model(model_b, spec, perturbed)
        curve = interpolation_curve(model_a, aligned, loaders, num_points, post)
        row = {"q": q, "moved": moved_fraction(perm, perturbed), "curve": curve,
               "barriers": curve_barriers(curve)}
        if sampler is not None:
            state_a, state_b = model_a.state_dict(), aligned.state_dict()
            lams = sample_lambdas(sampler, state_a, k, seed)
            states = [combine_states(state_a, state_b, lam) for lam in lams]
            if post is not None:
                means = [mean_lambda(lam, state_a) for lam in lams]
                states = post_process_states(model_a, states, post, means)
            result = evaluate_combinations(model_a, states, loaders[first], model_a, aligned)
            row["combination"] = {m: summarize(v) for m, v in result["per_sample"].items()}
        rows.append(row)
    return rows
