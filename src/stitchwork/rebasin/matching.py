"""The matcher interface shared by every alignment method, and the ``naive`` matcher.

Every matcher maps ``(model_a, model_b, spec, data)`` to a permutation of B's units
that lines B up with A (``data`` is an iterable of batches; matchers that only read
weights ignore it). Apply it with :func:`stitchwork.rebasin.apply.permute_model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .apply import identity_permutation, load_permutation
from .spec import Permutation, PermutationSpec, SpecError


@runtime_checkable
class Matcher(Protocol):
    """Find the permutation of B's hidden units that best lines B up with A."""

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation: ...


def check_compatible(
    spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor]
) -> None:
    """Raise unless A and B have the spec's keys with identical shapes (same architecture)."""
    for which, state in (("A", state_a), ("B", state_b)):
        if set(state) != set(spec.axes_to_perm):
            diff = sorted(set(state) ^ set(spec.axes_to_perm))[:5]
            raise SpecError(
                f"model {which} has another architecture than the spec (keys differ: {diff})"
            )
    for key in spec.axes_to_perm:
        if state_a[key].shape != state_b[key].shape:
            raise SpecError(
                f"models A and B differ in {key!r}: {tuple(state_a[key].shape)} vs "
                f"{tuple(state_b[key].shape)}; re-basin needs the same architecture and width"
            )


class Naive:
    """The identity alignment: B as trained (the baseline every matcher is compared to)."""

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation:
        check_compatible(spec, model_a.state_dict(), model_b.state_dict())
        return identity_permutation(spec)


class Saved:
    """A permutation saved earlier (e.g. a rebasin job's ``permutation.pt``), checked against the spec."""

    def __init__(self, path: str):
        self.path = path

    def __call__(
        self, model_a: nn.Module, model_b: nn.Module, spec: PermutationSpec,
        data: Iterable[Any] | None = None,
    ) -> Permutation:
        check_compatible(spec, model_a.state_dict(), model_b.state_dict())
        return load_permutation(self.path, spec)
