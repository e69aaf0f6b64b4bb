"""``stitch(...)``: one call from two trained models to a fitted stitch and its metrics.

Usable from a notebook with names (``stitch="affine", matching="direct"``) and from the app
with configured callables (``hydra.utils.instantiate`` of ``conf/stitch/*.yaml`` and
``conf/matching/*.yaml``, both ``_partial_: true``).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import lightning as L

from ..data.base import ClassificationData
from ..models.base import CutModel
from . import matching as matching_methods
from .base import StitchFactory
from .constrained import OrthogonalStitch, PermutationStitch
from .layers import (
    AffineStitch,
    BNAffineStitch,
    DiagonalStitch,
    FlattenLinearStitch,
    IdentityStitch,
    LowRankStitch,
    parameter_count,
)
from .matching import MatchContext, MatchingMethod
from .metrics import stitch_metrics
from .stitched import StitchedModel, build_stitched

#: Built-in stitch layers by name (a new layer needs no entry: pass its factory instead).
BUILTIN_STITCHES: dict[str, type] = {
    cls.kind: cls
    for cls in (AffineStitch, BNAffineStitch, LowRankStitch, DiagonalStitch, OrthogonalStitch,
                PermutationStitch, IdentityStitch, FlattenLinearStitch)
}  # fmt: skip
#: Built-in matching methods by name.
BUILTIN_MATCHINGS = ("direct", "task_loss", "soft_task_loss", "direct_then_task", "l1")


def resolve_stitch(stitch: str | StitchFactory, **options: Any) -> StitchFactory:
    """A stitch factory from a built-in name (with keyword ``options``) or a callable."""
    if callable(stitch):
        return functools.partial(stitch, **options) if options else stitch
    if stitch not in BUILTIN_STITCHES:
        raise ValueError(f"unknown stitch {stitch!r}; valid: {', '.join(BUILTIN_STITCHES)}")
    return functools.partial(BUILTIN_STITCHES[stitch], **options)


def resolve_matching(matching: str | MatchingMethod, **options: Any) -> MatchingMethod:
    """A matching method from a built-in name (with keyword hyper-parameters) or a callable."""
    if callable(matching):
        return functools.partial(matching, **options) if options else matching
    if matching not in BUILTIN_MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; valid: {', '.join(BUILTIN_MATCHINGS)}")
    return functools.partial(getattr(matching_methods, matching), **options)


def method_name(method: Any) -> str:
    """The function name behind a (possibly partial) matching method."""
    while isinstance(method, functools.partial):
        method = method.func
    return getattr(method, "__name__", type(method).__name__)


def stitch(
    model_a: CutModel, cut_a: str, model_b: CutModel, cut_b: str, data: ClassificationData, *,
    stitch: str | StitchFactory = "affine", matching: str | MatchingMethod = "direct",
    stitch_options: dict[str, Any] | None = None, matching_options: dict[str, Any] | None = None,
    seed: int = 0, trainer_options: dict[str, Any] | None = None, metrics: bool = True,
    metric_batch_size: int = 512,
) -> tuple[StitchedModel, dict[str, Any]]:  # fmt: skip
    """Stitch A's front at ``cut_a`` to B's back at ``cut_b``, fit it, and measure it.

    Parameters
    ----------
    model_a, model_b
        Trained donors (may be the same object). They are frozen in place.
    cut_a, cut_b
        Cut point names (``model.cut_points``).
    data
        The data module whose ``train`` split fits the stitch, ``val`` split gives the
        per-epoch curve and ``test`` split the metrics.
    stitch
        A built-in name (``affine``, ``bn_affine``, ``low_rank``, ``diagonal``,
        ``orthogonal``, ``permutation``, ``identity``, ``flatten_linear``) or a factory
        ``(in_shape, out_shape) -> StitchLayer``; ``stitch_options`` (e.g. ``resize``,
        ``rank``) go to it.
    matching
        A built-in name (``direct``, ``task_loss``, ``soft_task_loss``, ``direct_then_task``,
        ``l1``) or a callable ``(MatchContext) -> dict``; ``matching_options`` (epochs, lr,
        batch_size, ridge, temperature, l1_lambda, cache, ...) go to it.
    seed
        Seeds the stitch initialisation and the training order.
    trainer_options
        Extra ``lightning.Trainer`` arguments for task-loss methods (accelerator, ...).
    metrics
        Compute :func:`~.metrics.stitch_metrics` (two passes over train and test).

    Returns
    -------
    (StitchedModel, dict)
        The fitted model (eval mode) and a flat record: layer names, shapes, widths,
        stitch kind, method, parameter count, the method's report (``history`` holds
        per-epoch curves for task-loss methods), the metrics and wall times.
    """
    start = time.perf_counter()
    data.setup()
    factory = resolve_stitch(stitch, **(stitch_options or {}))
    method = resolve_matching(matching, **(matching_options or {}))
    L.seed_everything(seed, verbose=False)
    stitched = build_stitched(model_a, cut_a, model_b, cut_b, factory)
    record = describe_stitch(stitched, cut_a, cut_b, method)
    record.update(fit_stitch(stitched, data, method, seed, trainer_options))
    if metrics:
        record.update(stitch_metrics(stitched, model_a, model_b, data, batch_size=metric_batch_size))
    record["wall_time_s"] = time.perf_counter() - start
    return stitched, record


def describe_stitch(stitched: StitchedModel, cut_a: str, cut_b: str, method: Any) -> dict[str, Any]:
    """The record's header: layer names, shapes, widths, stitch kind, method, parameter count."""
    layer = stitched.stitch
    return {
        "layer_a": cut_a, "layer_b": cut_b, "shape_a": list(layer.in_shape),
        "shape_b": list(layer.out_shape), "width_a": layer.in_shape[0], "width_b": layer.out_shape[0],
        "stitch": layer.kind, "matching": method_name(method), "stitch_params": parameter_count(layer),
    }  # fmt: skip


def fit_stitch(
    stitched: StitchedModel, data: ClassificationData, method: MatchingMethod, seed: int = 0,
    trainer_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the stitch layer with ``method``; its report plus ``matching_wall_s``. Ends in eval mode."""
    fit_start = time.perf_counter()
    report = dict(method(MatchContext(stitched, data, seed, dict(trainer_options or {}))))
    report["matching_wall_s"] = time.perf_counter() - fit_start
    stitched.eval()
    return report
