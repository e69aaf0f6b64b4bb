"""The pairs of a stitching matrix: which (front, back) cut points, their stitches, their groups.

A matrix job stitches every front cut point of A to every back cut point of B. Each pair is
built exactly as a single-pair job builds it (:func:`~.stitched.build_stitched` right after
seeding with the job's seed, so a trained stitch starts from the same initialisation
whichever other pairs share the job). Pairs the stitch cannot join (conv to flat without
``flatten_linear``, two resolutions without ``resize``) are *skipped* with the reason.

Pairs share work through two keys: the **input key** (front, layout, B's spatial size)
names the rows ``rows(prepare(A_i))`` that every pair with that key fits from, and the
**target key** (back, layout) names the rows ``rows(B_j)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch

from ..cut import UnknownCutPointError, cut_point_shapes
from ..models.base import CutModel
from .base import StitchFactory, StitchLayer, StitchShapeError
from .stitched import StitchedModel, build_stitched


@dataclass(eq=False)  # pairs compare by identity
class MatrixPair:
    """One cell of a stitching matrix and what has been done to it so far."""

    front: str
    back: str
    stitched: StitchedModel | None = None
    status: str = "pending"  # pending | ok | skipped | failed
    reason: str | None = None  # why skipped or failed
    report: dict[str, Any] = field(default_factory=dict)  # what the matching did
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def layer(self) -> StitchLayer:
        return self.stitched.stitch

    @property
    def input_key(self) -> tuple:
        """Pairs with equal keys fit from the same rows of (resized) ``A_front``."""
        layer = self.layer
        spatial = layer.out_shape[1:] if not layer.flattens and len(layer.in_shape) == 3 else ()
        return (self.front, layer.flattens, spatial)

    @property
    def target_key(self) -> tuple:
        """Pairs with equal keys are compared with the same rows of ``B_back``."""
        return (self.back, self.layer.flattens)


def check_cut_list(model: CutModel, names: Iterable[str], key: str) -> list[str]:
    """``names`` as a list of valid, distinct cut points of ``model``; ``key`` names the setting.

    Raises ``ValueError`` for an empty list or a repeated name and
    :class:`~stitchwork.cut.UnknownCutPointError` (listing the valid names) for an unknown one.
    """
    names, valid = [str(n) for n in names], list(model.cut_points)
    if not names:
        raise ValueError(f"{key} is an empty list; give at least one cut point of "
                         f"{type(model).__name__}: {', '.join(valid)}")  # fmt: skip
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UnknownCutPointError(f"{key}: unknown cut point(s) {', '.join(map(repr, unknown))} for "
                                   f"{type(model).__name__}; valid cut points: {', '.join(valid)}")  # fmt: skip
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{key} names {', '.join(repeated)} more than once; list each cut point once")
    return names


def plan_pairs(
    model_a: CutModel, fronts: Sequence[str], model_b: CutModel, backs: Sequence[str],
    factory: StitchFactory, seed: int = 0,
) -> list[MatrixPair]:  # fmt: skip
    """Every (front, back) pair, row by row, with its stitched model or the reason it is skipped."""
    fronts = check_cut_list(model_a, fronts, "fronts")
    backs = check_cut_list(model_b, backs, "backs")
    pairs, shapes = [], (cut_point_shapes(model_a), cut_point_shapes(model_b))
    L.seed_everything(seed, verbose=False)  # as stitching.api.stitch does before building
    seeded = torch.get_rng_state()  # each pair starts from it: the same init, 64 reseeds saved
    for front in fronts:
        for back in backs:
            torch.set_rng_state(seeded)
            try:
                pairs.append(MatrixPair(front, back, build_stitched(model_a, front, model_b, back, factory, shapes)))
            except StitchShapeError as err:
                pairs.append(MatrixPair(front, back, status="skipped", reason=str(err)))
    return pairs


def group_by(pairs: Iterable[MatrixPair], key: str) -> dict[Any, list[MatrixPair]]:
    """Pairs by the value of attribute ``key`` (``front``, ``back``, ``input_key``, ...), in order."""
    groups: dict[Any, list[MatrixPair]] = {}
    for pair in pairs:
        groups.setdefault(getattr(pair, key), []).append(pair)
    return groups


def chunks(items: Sequence, size: int) -> list[Sequence]:
    """``items`` in consecutive pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"max_pairs_per_step must be a positive integer, got {size!r}")
    return [items[i : i + size] for i in range(0, len(items), size)]
