"""Repair of a merged model by name: none, BatchNorm reset, or REPAIR.

One place that turns the ``post`` / ``merge`` option of the apps into a callable
``(model, lam) -> model``, usable on every point of an interpolation curve.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .bn_reset import reset_bn_stats
from .interpolate import PostProcess
from .repair import repair
from .spec import PermutationSpec

POST_PROCESSES = ("none", "bn_reset", "repair")


def check_post(name: str) -> str:
    """Return ``name`` or raise naming the valid post-processes."""
    if name not in POST_PROCESSES:
        raise ValueError(f"unknown post-process {name!r}; valid: {', '.join(POST_PROCESSES)}")
    return name


def post_processor(
    name: str, model_a: nn.Module, aligned_b: nn.Module, spec: PermutationSpec,
    data: Iterable[Any], max_batches: int | None = None,
) -> PostProcess | None:
    """``(model, lam) -> model`` for ``bn_reset`` or ``repair`` of an A–aligned-B merge; None for ``none``.

    ``data`` must be re-iterable (a loader): REPAIR reads it three times.
    """
    if check_post(name) == "bn_reset":
        return lambda model, lam: reset_bn_stats(model, data, max_batches)
    if name == "repair":
        return lambda model, lam: repair(model, model_a, aligned_b, spec, data, lam, max_batches)
    return None
