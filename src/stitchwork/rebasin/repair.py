"""REPAIR (Jordan et al. 2023): restore the per-channel statistics of a merged model.

The goal statistics of each channel are the interpolation of the endpoints',
``μ = (1 − λ)μ_A + λμ_B`` and ``σ = (1 − λ)σ_A + λσ_B``. Channels are measured at each
norm layer's output (BN or LayerNorm nets) or, in nets without norms, at each hidden
conv/linear output. One pass over the merged model rescales each channel on the fly with
batch statistics (as the train-mode BatchNorm of the original method does, so later
layers see repaired inputs) while recording the raw statistics; the correction is then
folded into that layer's weight and bias, so the repaired model has the same
architecture and state_dict keys.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..utils.modules import eval_mode, model_device
from .spec import PermutationSpec
from .stats import Moments, batch_input, output_hook, unit_features

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
EPS = 1e-5


def repair_points(model: nn.Module, spec: PermutationSpec) -> list[str]:
    """Modules whose output channels REPAIR corrects: permuted norms, else permuted layers."""
    def permuted(name: str) -> bool:
        axes = spec.axes_to_perm.get(f"{name}.weight")
        return axes is not None and axes[0] is not None

    modules = [(n, m) for n, m in model.named_modules() if permuted(n)]
    norms = [n for n, m in modules if isinstance(m, NORM_TYPES)]
    return norms or [n for n, m in modules if isinstance(m, (nn.Linear, nn.Conv2d))]


@torch.no_grad()
def channel_stats(
    model: nn.Module, points: list[str], data: Iterable[Any], max_batches: int | None = None,
    goal: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Float64 ``(mean, std)`` of each channel at ``points`` (outputs), in eval mode.

    With ``goal``, each output is also renormalised on the fly to the goal statistics
    (batch statistics are used), and the *raw* statistics are returned.
    """
    modules = dict(model.named_modules())
    moments = {p: Moments() for p in points}
    handles = [
        modules[p].register_forward_hook(output_hook(lambda out, p=p: _observe(out, moments[p], goal, p)))
        for p in points
    ]
    device = model_device(model)
    try:
        with eval_mode(model):
            for i, batch in enumerate(data):
                if max_batches is not None and i >= max_batches:
                    break
                model(batch_input(batch).to(device))
    finally:
        for h in handles:
            h.remove()
    return {p: m.mean_std() for p, m in moments.items()}


def _observe(out: torch.Tensor, moments: Moments, goal: dict | None, point: str) -> torch.Tensor | None:
    """Record ``out``; with a goal, return it renormalised per channel to the goal."""
    moments.update(out)
    if goal is None:
        return None
    x = unit_features(out).double()  # (n*positions, c)
    mean, std = x.mean(0), x.std(0, unbiased=False)
    goal_mean, goal_std = goal[point]
    shape = (1, -1) + (1,) * (out.dim() - 2)
    scale = (goal_std / std.clamp_min(EPS)).view(shape)
    return ((out.double() - mean.view(shape)) * scale + goal_mean.view(shape)).to(out.dtype)


@torch.no_grad()
def repair(
    merged: nn.Module, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
    data: Iterable[Any], lam: float = 0.5, max_batches: int | None = None,
) -> nn.Module:
    """A repaired copy of ``merged``, an interpolation at ``lam`` of A and aligned B.

    ``data`` is iterated three times (A, B, merged); pass a fixed loader, not a
    generator. For element-wise combinations pass the mean λ of the combination.
    """
    points = repair_points(merged, spec)
    stats_a = channel_stats(model_a, points, data, max_batches)
    stats_b = channel_stats(model_b, points, data, max_batches)
    goal = {
        p: (torch.lerp(stats_a[p][0], stats_b[p][0], lam), torch.lerp(stats_a[p][1], stats_b[p][1], lam))
        for p in points
    }
    repaired = copy.deepcopy(merged)
    raw = channel_stats(repaired, points, data, max_batches, goal=goal)
    modules = dict(repaired.named_modules())
    for p in points:
        _fold(modules[p], raw[p], goal[p])
    return repaired


def _fold(module: nn.Module, raw: tuple, goal: tuple) -> None:
    """Fold ``y -> (y − μ_raw)·σ_goal/σ_raw + μ_goal`` into the module's weight and bias."""
    if getattr(module, "bias", None) is None:
        raise ValueError(f"REPAIR needs a bias on {type(module).__name__} to shift its channels")
    scale = goal[1] / raw[1].clamp_min(EPS)
    w = module.weight
    w.mul_(scale.view(-1, *([1] * (w.dim() - 1))).to(w.dtype))
    module.bias.copy_(((module.bias.double() - raw[0]) * scale + goal[0]).to(w.dtype))
