"""Linear interpolation between two (aligned) models, and loss barriers by three definitions.

Convention: ``θ(λ) = (1 − λ)·θ_A + λ·θ_B``, so λ = 0 is A and λ = 1 is B. Integer
buffers (BatchNorm's ``num_batches_tracked``) are taken from A.

Barrier definitions (papers differ; all three are reported):

* ``max``: ``max_λ L(λ) − ½(L(0) + L(1))`` (Git Re-Basin);
* ``midpoint``: ``L(½) − ½(L(0) + L(1))`` (REPAIR, Entezari et al.);
* ``linear``: ``sup_λ [L(λ) − ((1 − λ)L(0) + λL(1))]``, the height above the chord.

For a quantity where higher is better (accuracy) the sign is flipped, so a barrier is
always "how much worse than the endpoints".

Endpoints: with a post-process (BN reset, REPAIR) the curve's λ = 0 and 1 are the endpoints
*after* post-processing (a BN reset moves A's statistics too). Barriers are measured against
the *original* endpoints, as the papers do: :func:`interpolation_curve` records both, and
:func:`curve_barriers` puts the original values at λ = 0 and 1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..training.evaluate import evaluate

#: Called as ``post(model, lam)`` on each interpolated model before evaluation
#: (e.g. BN reset or REPAIR); returns the model to evaluate.
PostProcess = Callable[[nn.Module, float], nn.Module]


def lerp_state(
    state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """``(1 − lam)·A + lam·B`` for floating entries; other entries copied from A."""
    return {
        k: torch.lerp(a, state_b[k].to(a.device), lam) if a.is_floating_point() else a.clone()
        for k, a in state_a.items()
    }


def interpolate_models(model_a: nn.Module, model_b: nn.Module, lam: float) -> nn.Module:
    """A copy of ``model_a`` holding the weights ``(1 − lam)·A + lam·B``."""
    merged = copy.deepcopy(model_a)
    merged.load_state_dict(lerp_state(model_a.state_dict(), model_b.state_dict(), lam))
    return merged


def lambda_grid(num_points: int = 25) -> list[float]:
    """``num_points`` evenly spaced λ in [0, 1] (odd counts include ½ exactly)."""
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    return [float(x) for x in np.linspace(0.0, 1.0, int(num_points))]


def interpolation_curve(
    model_a: nn.Module, model_b: nn.Module, loaders: Mapping[str, Iterable],
    num_points: int = 25, post: PostProcess | None = None,
) -> dict:
    """Loss and accuracy along the line from A to B on every loader.

    Returns ``{"lambda": [...], split: {"loss": [...], "acc": [...], "original_ends": {...}}}``
    for each split in ``loaders``; ``post`` (if given) processes each interpolated model first,
    the endpoints included. ``original_ends`` holds ``{"loss": [L_A, L_B], "acc": [...]}`` of
    the unprocessed A and B (the curve's own ends when there is no post-process).
    """
    lambdas = lambda_grid(num_points)
    curve: dict = {"lambda": lambdas, **{s: {"loss": [], "acc": []} for s in loaders}}
    for lam in lambdas:
        model = interpolate_models(model_a, model_b, lam)
        if post is not None:
            model = post(model, lam)
        for split, loader in loaders.items():
            result = evaluate(model, loader)
            curve[split]["loss"].append(result["loss"])
            curve[split]["acc"].append(result["acc"])
    for split, loader in loaders.items():
        values = curve[split]
        if post is None:
            ends = {q: [values[q][0], values[q][-1]] for q in ("loss", "acc")}
        else:
            a, b = evaluate(model_a, loader), evaluate(model_b, loader)
            ends = {q: [a[q], b[q]] for q in ("loss", "acc")}
        values["original_ends"] = ends
    return curve


def barriers(
    lambdas: Sequence[float], values: Sequence[float], higher_is_better: bool = False,
    ends: Sequence[float] | None = None,
) -> dict[str, float]:
    """The three barriers (``max``, ``midpoint``, ``linear``) of a curve sampled at ``lambdas``.

    ``lambdas`` must be increasing from 0 to 1. The midpoint is read at λ = ½ (linearly
    interpolated between samples when ½ is not on the grid). ``ends`` (the original
    endpoints' values, if given) replace the curve's values at λ = 0 and 1.
    """
    lam = np.asarray(lambdas, dtype=np.float64)
    v = np.array(values, dtype=np.float64)
    if lam.shape != v.shape or lam.size < 2:
        raise ValueError(f"need matching lambdas and values (>= 2), got {lam.size} and {v.size}")
    if ends is not None:
        v[0], v[-1] = ends
    if lam[0] != 0.0 or lam[-1] != 1.0 or np.any(np.diff(lam) <= 0):
        raise ValueError("lambdas must increase from 0 to 1")
    if higher_is_better:
        v = -v
    ends = 0.5 * (v[0] + v[-1])
    chord = (1 - lam) * v[0] + lam * v[-1]
    return {
        "max": float(v.max() - ends),
        "midpoint": float(np.interp(0.5, lam, v) - ends),
        "linear": float((v - chord).max()),
    }


def curve_barriers(curve: Mapping) -> dict[str, dict[str, float]]:
    """Loss and accuracy barriers of every split of an :func:`interpolation_curve` result.

    Measured against the original endpoints where the curve records them (``original_ends``).
    """
    out: dict[str, dict[str, float]] = {}
    for split, values in curve.items():
        if split == "lambda":
            continue
        ends = values.get("original_ends", {})
        out[f"{split}_loss"] = barriers(curve["lambda"], values["loss"], ends=ends.get("loss"))
        out[f"{split}_acc"] = barriers(curve["lambda"], values["acc"], True, ends.get("acc"))
    return out
