"""The plan of an all-pairs comparison: every argument checked before any data is touched.

:func:`make_plan` turns the request of :func:`~stitchwork.similarity.all_pairs.all_pairs`
into the row and column layers, their feature counts after the spatial policy, and which
measures are streamed exactly over every example (those whose accumulator is a
:class:`~stitchwork.similarity.LinearCKAAccumulator`, when their float64 sums fit the
budget) and which are computed on the seeded subset. The subset helpers live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..cut import check_cut_point, cut_point_shapes
from ._checks import SPATIAL_POLICIES, SimilarityInputError
from ._pair_sums import Key, StreamedSums
from .measures import Measure, get_measure
from .streaming import LinearCKAAccumulator

LINEAR_MODES = ("auto", "stream", "subset")


@dataclass(frozen=True)
class Plan:
    """Rows and columns as ``(model tag, cut point)`` keys, and how each measure is computed."""

    rows: list[Key]
    cols: list[Key]
    measures: dict[str, Measure]  # name -> measure, in the order asked for
    streamed: dict[str, bool]  # name -> debiased, for the measures streamed exactly
    subset: list[str]  # names computed on the seeded subset
    dims: dict[Key, int]


def make_plan(
    model_a, model_b, cuts_a, cuts_b, measures, spatial, linear, options, budget
) -> Plan:
    """Validate every argument before any data is touched; decide streamed vs subset."""
    chosen = _measures(measures, spatial, linear, options)
    tag_b = "a" if model_b is model_a else "b"
    rows = [("a", c) for c in _cut_points(model_a, cuts_a)]
    cols = [(tag_b, c) for c in _cut_points(model_b, cuts_b)]
    shapes = {("a", k): v for k, v in cut_point_shapes(model_a).items()}
    shapes.update({(tag_b, k): v for k, v in cut_point_shapes(model_b).items()})
    dims = {k: _feature_dim(k, shapes[k], spatial) for k in {*rows, *cols}}
    if spatial == "samples":
        _check_positions(rows, cols, shapes)
    streamed = _streamed(chosen, options, linear, StreamedSums.bytes_needed(dims, rows, cols), budget)
    return Plan(rows, cols, chosen, streamed, [m for m in chosen if m not in streamed], dims)


def _measures(measures, spatial, linear, options: Mapping[str, Any]) -> dict[str, Measure]:
    """Measures by name (names looked up, objects kept), after checking policy, mode, options."""
    if isinstance(measures, (str, Measure)) or not measures:
        raise SimilarityInputError(f"measures must be a non-empty list of names, got {measures!r}")
    chosen = {m.name: m for m in map(get_measure, measures)}  # raises naming the valid measures
    if spatial is not None and spatial not in SPATIAL_POLICIES:
        raise SimilarityInputError(
            f"unknown spatial policy {spatial!r}; valid policies: {', '.join(SPATIAL_POLICIES)}"
        )
    if linear not in LINEAR_MODES:
        raise SimilarityInputError(
            f"unknown linear mode {linear!r}; valid: {', '.join(LINEAR_MODES)}"
        )
    own = {n: o["spatial"] for n, o in options.items() if isinstance(o, Mapping) and "spatial" in o}
    for name, policy in own.items():
        if policy is not None and policy not in SPATIAL_POLICIES:
            raise SimilarityInputError(
                f"options.{name}.spatial={policy!r} is not a spatial policy; valid: {', '.join(SPATIAL_POLICIES)}"
            )
    stray = sorted(set(options) - set(chosen))
    if stray:
        raise SimilarityInputError(
            f"options given for measures not asked for: {stray}; measures: {list(chosen)}"
        )
    return chosen


def _streamed(chosen: dict[str, Measure], options, linear: str, need: int, budget: int) -> dict[str, bool]:
    """``name -> debiased`` of the measures streamed over all examples by the shared sums."""
    if linear == "subset":
        return {}
    accs = {name: m.accumulator() for name, m in chosen.items() if not options.get(name)}
    streamable = {n: a.debiased for n, a in accs.items() if isinstance(a, LinearCKAAccumulator)}
    if streamable and need > budget:
        if linear == "stream":
            raise SimilarityInputError(
                f"streamed linear CKA needs {need / 2**30:.2f} GiB of float64 sums (budget "
                f"{budget / 2**30:.2f} GiB); use spatial='avgpool' or 'samples', fewer cut points, "
                "linear='subset', or a larger max_moment_bytes"
            )
        return {}
    return streamable


def _cut_points(model: nn.Module, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(model.cut_points)
    if isinstance(names, str) or not names:
        raise SimilarityInputError(f"cut points must be a non-empty list of names, got {names!r}")
    for name in names:
        check_cut_point(model, name)  # UnknownCutPointError lists the valid names
    if len(set(names)) != len(names):
        raise SimilarityInputError(f"cut points listed twice: {list(names)}")
    return list(names)


def _feature_dim(key: Key, shape: tuple, spatial: str | None) -> int:
    """Features per row of a cut point's output after the spatial policy."""
    if len(shape) == 1:
        return int(shape[0])
    if len(shape) not in (2, 3):
        raise SimilarityInputError(
            f"cut point {key[1]!r} gives examples of shape {shape}; need (d,), tokens (t, d) or (c, h, w)"
        )
    if spatial is None:
        raise SimilarityInputError(
            f"cut point {key[1]!r} is a conv map {shape}; pass spatial= one of "
            f"{', '.join(SPATIAL_POLICIES)}"
        )
    if len(shape) == 2:  # tokens (t, d)
        return shape[0] * shape[1] if spatial == "flatten" else shape[1]
    c, h, w = shape
    return c * h * w if spatial == "flatten" else c


def _check_positions(rows: list[Key], cols: list[Key], shapes: dict[Key, tuple]) -> None:
    """With positions as samples every compared pair needs the same number of positions."""

    def positions(k: Key) -> int:
        s = shapes[k]
        return s[1] * s[2] if len(s) == 3 else s[0] if len(s) == 2 else 1

    bad = [f"{u[1]}×{v[1]}" for u in rows for v in cols if positions(u) != positions(v)]
    if bad:
        raise SimilarityInputError(
            f"spatial='samples' pairs rows position by position, but these cut-point pairs have "
            f"different h*w: {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}; choose cut "
            "points"
            " of one resolution or spatial='avgpool' / 'flatten'"
        )


def dataset_size(loader: Iterable) -> int:
    try:
        return len(loader.dataset)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        raise TypeError(
            "subset measures need a loader with a sized .dataset (a torch DataLoader)"
        ) from None


def check_subset_size(n_subset: int) -> None:
    if isinstance(n_subset, bool) or not isinstance(n_subset, int) or n_subset < 4:
        raise SimilarityInputError(f"n_subset must be an int >= 4, got {n_subset!r}")


def subset_positions(n_total: int, n_subset: int, seed: int) -> torch.Tensor:
    """Sorted seeded positions of ``min(n_subset, n_total)`` examples."""
    if n_subset >= n_total:
        return torch.arange(n_total)
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm[:n_subset].sort().values


def in_subset(picked: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """Row indices within the batch at ``start`` of the picked examples."""
    return picked[(picked >= start) & (picked < start + size)] - start


