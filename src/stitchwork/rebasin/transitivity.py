"""Transitivity of alignment (Mode Combinability, Csiszárik et al. 2023).

Align A and B each to a third model C; the two re-based models A′ = π_A(A) and
B′ = π_B(B) are then compared along the linear path, against the naive A–B path and
against B aligned to A directly. Low A′–B′ barriers mean alignment is (nearly) transitive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from .apply import permute_model
from .interpolate import PostProcess, curve_barriers, interpolation_curve
from .matching import Matcher
from .spec import PermutationSpec


def transitivity(
    model_a: nn.Module, model_b: nn.Module, model_c: nn.Module, spec: PermutationSpec,
    matcher: Matcher, loaders: Mapping[str, Iterable], data: Iterable[Any] | None = None,
    num_points: int = 25, post: PostProcess | None = None,
) -> dict[str, dict]:
    """Curves and barriers of ``via_c`` (A′–B′), ``naive`` (A–B) and ``direct`` (A–π(B)).

    ``data`` feeds matchers that need activations. Returns ``{path: {"curve",
    "barriers"}}`` plus the permutations under ``"perms"``.
    """
    perm_a = matcher(model_c, model_a, spec, data)
    perm_b = matcher(model_c, model_b, spec, data)
    perm_direct = matcher(model_a, model_b, spec, data)
    paths = {
        "via_c": (permute_model(model_a, spec, perm_a), permute_model(model_b, spec, perm_b)),
        "naive": (model_a, model_b),
        "direct": (model_a, permute_model(model_b, spec, perm_direct)),
    }
    out: dict[str, dict] = {}
    for name, (left, right) in paths.items():
        curve = interpolation_curve(left, right, loaders, num_points, post)
        out[name] = {"curve": curve, "barriers": curve_barriers(curve)}
    out["perms"] = {"a_to_c": perm_a, "b_to_c": perm_b, "b_to_a": perm_direct}
    return out
