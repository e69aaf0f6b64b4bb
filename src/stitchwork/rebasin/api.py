"""``align(...)`` and ``merge(...)``: the re-basin pipeline in two calls, as ``stitch`` is for stitching.

    alignment = align(model_a, model_b, WeightMatcher())            # spec -> matcher -> permute
    merged = merge(model_a, alignment, lam=0.5, post=BNReset(), data=train_loader)

Usable from a notebook with plain objects and from the apps with configured ones
(``conf/rebasin/matcher/*.yaml``, ``conf/rebasin/post/*.yaml``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .apply import permute_model
from .builders import spec_for
from .interpolate import PostProcess, interpolate_models
from .matching import Matcher
from .post import POST_PROCESSES, PostProcessor, check_post
from .spec import Permutation, PermutationSpec


@dataclass(frozen=True)
class Alignment:
    """B lined up with A: the spec both share, the permutation found, and B permuted by it.

    Attributes
    ----------
    spec
        The permutation spec of the architecture (the model's own, else inferred by fx).
    perm
        ``perm name -> index tensor`` (new unit ``i`` of B is old unit ``perm[p][i]``).
    aligned
        A permuted deep copy of B; it computes the same function as B.
    """

    spec: PermutationSpec
    perm: Permutation
    aligned: nn.Module


def align(
    model_a: nn.Module, model_b: nn.Module, matcher: Matcher, data: Iterable[Any] | None = None,
    spec: PermutationSpec | None = None,
) -> Alignment:
    """Permute B's units to line up with A's using ``matcher`` (data for activation matching).

    ``spec`` defaults to :func:`~stitchwork.rebasin.builders.spec_for` of A.
    """
    spec = spec_for(model_a) if spec is None else spec
    perm = matcher(model_a, model_b, spec, data)
    return Alignment(spec, perm, permute_model(model_b, spec, perm))


def post_process(
    post: PostProcessor | str | None, model_a: nn.Module, aligned_b: nn.Module, spec: PermutationSpec,
    data: Iterable[Any] | None = None,
) -> PostProcess | None:
    """The ``(model, lam) -> model`` repair of ``post`` (an object or a built-in name) for A and π(B)."""
    if post is None:
        return None
    if isinstance(post, str):
        post = POST_PROCESSES[check_post(post)]()
    return post(model_a, aligned_b, spec, data)


def merge(
    model_a: nn.Module, alignment: Alignment, lam: float = 0.5,
    post: PostProcessor | str | None = None, data: Iterable[Any] | None = None,
) -> nn.Module:
    """``(1 − lam)·A + lam·π(B)``, repaired by ``post`` on ``data`` (a copy; the endpoints are untouched)."""
    merged = interpolate_models(model_a, alignment.aligned, float(lam))
    repair = post_process(post, model_a, alignment.aligned, alignment.spec, data)
    return repair(merged, float(lam)) if repair is not None else merged
