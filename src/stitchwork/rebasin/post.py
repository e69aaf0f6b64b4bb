"""Repair of a merged model: none, BatchNorm reset, or REPAIR, as small configurable objects.

A *post-processor* is built once per job (``conf/rebasin/post/<name>.yaml`` names its class
by ``_target_``; ``max_batches`` comes from the app's ``post_batches``) and, given the two
endpoints of a merge, returns the callable ``(model, lam) -> model`` applied to every point
of an interpolation curve or combination (``None``: leave the models as they are). A new
one is a class with that ``__call__`` and a yaml. :func:`post_processor` looks the built-ins
up by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from torch import nn

from .bn_reset import reset_bn_stats
from .interpolate import PostProcess
from .repair import repair
from .spec import PermutationSpec


@runtime_checkable
class PostProcessor(Protocol):
    """``(model_a, aligned_b, spec, data) -> (model, lam) -> model``, or ``None`` for no change.

    ``data`` must be re-iterable (a loader): REPAIR reads it three times.
    """

    def __call__(
        self, model_a: nn.Module, aligned_b: nn.Module, spec: PermutationSpec, data: Iterable[Any]
    ) -> PostProcess | None: ...


class NoPost:
    """No repair: interpolated models are evaluated as they are."""

    def __init__(self, max_batches: int | None = None) -> None:
        self.max_batches = max_batches

    def __call__(self, model_a, aligned_b, spec, data) -> None:
        return None


class BNReset:
    """Reset every BatchNorm's running statistics on ``data`` (Jordan et al.'s baseline repair)."""

    def __init__(self, max_batches: int | None = None) -> None:
        self.max_batches = max_batches

    def __call__(self, model_a, aligned_b, spec, data) -> PostProcess:
        return lambda model, lam: reset_bn_stats(model, data, self.max_batches)


class Repair:
    """REPAIR (Jordan et al. 2023): renormalise each channel of the merge to the endpoints' mix."""

    def __init__(self, max_batches: int | None = None) -> None:
        self.max_batches = max_batches

    def __call__(self, model_a, aligned_b, spec, data) -> PostProcess:
        return lambda model, lam: repair(model, model_a, aligned_b, spec, data, lam, self.max_batches)


#: The built-in post-processors by the names the apps' ``post`` / ``merge`` options use.
POST_PROCESSES: dict[str, type] = {"none": NoPost, "bn_reset": BNReset, "repair": Repair}


def check_post(name: str) -> str:
    """Return ``name`` or raise naming the valid post-processes."""
    if name not in POST_PROCESSES:
        raise ValueError(f"unknown post-process {name!r}; valid: {', '.join(POST_PROCESSES)}")
    return name


def post_processor(
    name: str, model_a: nn.Module, aligned_b: nn.Module, spec: PermutationSpec,
    data: Iterable[Any], max_batches: int | None = None,
) -> PostProcess | None:
    """``(model, lam) -> model`` of the built-in post-process ``name`` for an A–aligned-B merge."""
    return POST_PROCESSES[check_post(name)](max_batches)(model_a, aligned_b, spec, data)
