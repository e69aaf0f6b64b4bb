"""Activation matching (Git Re-Basin): per permutation, a linear assignment on the
cross-correlation (or inner product) of A's and B's units over training data.

One streamed pass: forward hooks at the spec's activation points accumulate, in float64,
unit sums, second moments and the cross-product matrix of A and B; features of conv
maps are pooled over positions, ``(n, c, h, w) -> (n*h*w, c)``. Hooks consume each
output at once, so in-place ops downstream cannot corrupt it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..utils.modules import common_device, eval_mode
from ..utils.moments import Moments
from .matching import check_compatible
from .spec import Permutation, PermutationSpec, SpecError
from .stats import batch_input, output_hook, unit_features

METHODS = ("corr", "inner")


class _CrossStats(Moments):
    """Streaming float64 moments of two ``(n, c)`` feature streams (shifted, shared accumulator)."""

    def __init__(self) -> None:
        super().__init__(xx="diag", yy="diag", cross=True)

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().update(unit_features(a), unit_features(b))  # (n*positions, c)

    def similarity(self, method: str) -> torch.Tensor:
        """``(c, c)``: correlation or mean inner product of A's unit i with B's unit j."""
        cov = self.cov_xy()
        if method == "inner":
            return cov + torch.outer(self.mean_x, self.mean_y)
        std_a, std_b = self.cov_x().clamp_min(0).sqrt(), self.cov_y().clamp_min(0).sqrt()
        return cov / (torch.outer(std_a, std_b) + 1e-12)


@torch.no_grad()
def activation_matching(
    spec: PermutationSpec, model_a: nn.Module, model_b: nn.Module, data: Iterable[Any],
    method: str = "corr", max_batches: int | None = None,
) -> Permutation:
    """Permutation of B's units maximising the summed unit similarity to A, per layer.

    Models are run in eval mode (their modes are restored) on their common device
    (:class:`~stitchwork.utils.modules.DeviceMismatchError` if they differ).
    Permutations whose activations are listed at several points (e.g. a ResNet stream)
    sum the similarities over those points.
    """
    if method not in METHODS:
        raise ValueError(f"unknown activation matching method {method!r}; valid: {', '.join(METHODS)}")
    check_compatible(spec, model_a.state_dict(), model_b.state_dict())
    device = common_device("activation matching", model_a=model_a, model_b=model_b)
    missing = [p for p in spec.perms if not spec.activations.get(p)]
    if missing:
        raise SpecError(f"the spec lists no activation points for permutations {missing}")
    points = sorted({m for mods in spec.activations.values() for m in mods})
    stats = {m: _CrossStats() for m in points}
    captured: dict[str, dict[str, torch.Tensor]] = {"a": {}, "b": {}}
    handles = []
    for tag, model in (("a", model_a), ("b", model_b)):
        modules = dict(model.named_modules())
        for m in points:
            store = captured[tag]
            hook = output_hook(lambda out, store=store, m=m: store.__setitem__(m, out.detach()))
            handles.append(modules[m].register_forward_hook(hook))
    try:
        with eval_mode(model_a, model_b):
            for i, batch in enumerate(data):
                if max_batches is not None and i >= max_batches:
                    break
                x = batch_input(batch).to(device)
                model_a(x), model_b(x)
                for m in points:
                    stats[m].update(captured["a"].pop(m), captured["b"].pop(m))
    finally:
        for h in handles:
            h.remove()
    if any(s.n == 0 for s in stats.values()):
        raise ValueError("activation matching got no data: the data iterable is empty")
    return {p: _assign(sum(stats[m].similarity(method) for m in spec.activations[p])) for p in spec.perms}


def _assign(sim: torch.Tensor) -> torch.Tensor:
    """Column chosen for each row by an exact maximum-weight assignment."""
    _, cols = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
    return torch.as_tensor(cols, dtype=torch.long)


class ActivationMatcher:
    """:class:`~stitchwork.rebasin.matching.Matcher` running :func:`activation_matching`."""

    def __init__(self, method: str = "corr", max_batches: int | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown activation matching method {method!r}; valid: {', '.join(METHODS)}")
        self.method, self.max_batches = method, max_batches

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation:
        if data is None:
            raise ValueError("activation matching needs data (an iterable of batches)")
        return activation_matching(spec, model_a, model_b, data, self.method, self.max_batches)
