"""Every layer pair of two models in one pass: an ``L_A x L_B`` matrix per similarity measure.

Each batch of the loader is run once through model A and once through model B (once in all
when B is A), stage by stage, and every chosen cut point's output is taken on the way: no
hooks, no re-running a model per pair. Two kinds of measure are served from that one pass:

- *streamed* (measures whose :meth:`~stitchwork.similarity.Measure.accumulator` is a
  :class:`~stitchwork.similarity.LinearCKAAccumulator`: ``linear_cka``,
  ``linear_cka_debiased``): exact over every example of the loader, from float64 sums (those of :class:`~stitchwork.similarity.LinearCKAAccumulator`,
  rows shifted by each layer's first-batch mean), shared: each layer's own sums serve every
  pair it is in, and every pair's cross sums come from one GEMM per batch over the layers
  stacked side by side (see ``_pair_sums``). Memory is that of the feature form,
  ``8 (D_A D_B + sum_u d_u^2)`` bytes with ``D`` the features summed over a model's chosen
  layers *after* the spatial policy: tiny for ``avgpool`` / ``samples`` (d = channels),
  large for ``flatten`` of early conv maps. The Gram form is not streamable over examples
  (it needs every pair of examples at once), so with ``linear="auto"`` a plan whose sums
  exceed ``max_moment_bytes`` computes linear CKA on the subset below instead, and the result
  says so (``n_examples``).
- *subset* (every other measure): computed by the library function on a fixed, seeded subset
  of ``n_subset`` examples, whose activations are kept per layer (after the spatial policy).

A measure declared ``symmetric`` is computed once per unordered pair in a self-comparison and
mirrored; any other is computed for every ordered pair. Arguments are checked by ``_plan``.

Stages must not modify their input in place (no stitchwork model does), because a cut
point's output is read after the next stage has run.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..utils.modules import eval_mode, model_device
from ._checks import SimilarityInputError, spatial_features
from ._pair_sums import Key, StreamedSums
from ._plan import (
    LINEAR_MODES,
    Plan,
    check_subset_size,
    dataset_size,
    in_subset,
    make_plan,
    subset_positions,
)
from .measures import Measure

__all__ = ["LINEAR_MODES", "SimilarityMatrices", "all_pairs", "check_all_pairs"]
_F64 = torch.float64


@dataclass(frozen=True)
class SimilarityMatrices:
    """Matrices of similarity between the cut points of model A (rows) and model B (columns).

    Attributes
    ----------
    rows, cols
        Cut-point names of A and B, in the matrices' order.
    values
        ``measure -> (L_A, L_B)`` float64 tensor on the CPU.
    n_examples
        ``measure -> number of examples it was computed on`` (all of them when streamed).
    subset
        Positions (in loader order) of the examples of the seeded subset; empty if unused.
    distances
        Names of the measures that are distances (0 = identical) rather than similarities.
    facts
        ``measure -> fact -> (L_A, L_B)`` float64 tensor of what a measure reports beside its
        value (:meth:`~stitchwork.similarity.Measure.evaluate`), e.g. the CCA family's
        ``trivial_correlations``; measures without facts are absent.
    """

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: dict[str, torch.Tensor]
    n_examples: dict[str, int]
    subset: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    distances: frozenset[str] = frozenset()
    facts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def __getitem__(self, measure: str) -> torch.Tensor:
        return self.values[measure]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists for JSON: rows, cols, n_examples and ``matrices: {measure: [[...]]}``."""
        return {
            "rows": list(self.rows),
            "cols": list(self.cols),
            "n_examples": dict(self.n_examples),
            "matrices": {name: m.tolist() for name, m in self.values.items()},
            "facts": {name: {k: m.tolist() for k, m in f.items()} for name, f in self.facts.items()},
        }


def all_pairs(
    model_a: nn.Module,
    model_b: nn.Module | None,
    loader: Iterable,
    cut_points_a: Sequence[str] | None = None,
    cut_points_b: Sequence[str] | None = None,
    measures: Sequence[str | Measure] = ("linear_cka",),
    spatial: str | None = None,
    n_subset: int = 1000,
    seed: int = 0,
    linear: str = "auto",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    max_moment_bytes: int = 2 * 2**30,
) -> SimilarityMatrices:
    """Similarity of every (cut point of A, cut point of B) pair from one pass over ``loader``.

    Parameters
    ----------
    model_a, model_b
        Models with ordered ``stages`` and ``cut_points`` (:class:`~stitchwork.models.CutModel`);
        ``model_b=None`` or ``model_b is model_a`` compares A with itself (one forward pass).
        Both run in eval mode under ``no_grad`` on their own device; modes are restored.
    loader
        Iterable of input batches or ``(inputs, ...)`` tuples, in a fixed order, with a sized
        ``dataset`` when a subset measure is asked for.
    cut_points_a, cut_points_b
        Cut points to compare (``None``: all of the model's).
    measures
        :class:`~stitchwork.similarity.Measure` objects, or names of registered ones
        (:data:`~stitchwork.similarity.MEASURES`); results are keyed by ``measure.name``.
    spatial
        Policy for conv maps (``"flatten"``, ``"samples"``, ``"avgpool"``); required if any
        chosen cut point is a conv map. ``"samples"`` needs equal ``h*w`` in every pair.
    n_subset, seed
        Size and seed of the example subset for non-streamed measures (all examples if larger).
    linear
        ``"stream"`` (exact over all examples; error if the sums exceed ``max_moment_bytes``),
        ``"subset"`` (on the subset like the other measures) or ``"auto"`` (stream if it fits).
    options
        Keyword arguments per measure, e.g. ``{"svcca": {"keep": 0.99}}``; a linear CKA with
        options (e.g. ``form``) is computed on the subset. ``spatial`` there is that measure's
        own policy for conv maps (e.g. ``{"pwcca": {"spatial": "avgpool"}}``).
    max_moment_bytes
        Memory allowed for the streamed float64 sums.

    Returns
    -------
    SimilarityMatrices
        One ``(L_A, L_B)`` float64 matrix per measure (procrustes entries are distances), with
        the number of examples each measure used.

    Raises
    ------
    SimilarityInputError
        Unknown measure, spatial policy or linear mode, a conv map without a policy, or a
        measure failing on a pair (the message names the pair).
    UnknownCutPointError
        A cut point the model does not list (the message lists the valid ones).
    """
    model_b, plan, options = _plan(locals())
    picked = torch.zeros(0, dtype=torch.long)
    if plan.subset:
        picked = subset_positions(dataset_size(loader), n_subset, seed)
    sums = StreamedSums(plan.rows, plan.cols) if plan.streamed else None
    policies = {name: options.get(name, {}).pop("spatial", spatial) for name in plan.subset}
    n_seen, kept = _one_pass({"a": model_a, "b": model_b}, loader, plan, spatial, sums, picked, policies)
    both = {name: _measure_matrix(plan, m, sums, kept, options, policies) for name, m in plan.measures.items()}
    values = {name: v for name, (v, _) in both.items()}
    facts = {name: f for name, (_, f) in both.items() if f}
    n_ex = {name: n_seen if name in plan.streamed else len(picked) for name in plan.measures}
    rows, cols = tuple(k[1] for k in plan.rows), tuple(k[1] for k in plan.cols)
    distances = frozenset(name for name, m in plan.measures.items() if m.distance)
    return SimilarityMatrices(rows, cols, values, n_ex, picked, distances, facts)


def check_all_pairs(model_a: nn.Module, model_b: nn.Module | None, **request: Any) -> dict[str, str]:
    """Validate an :func:`all_pairs` request without data: ``measure -> "streamed" | "subset"``.

    ``request`` holds :func:`all_pairs`'s keyword arguments (all but ``loader``). Runs the same
    checks (measures, policy, cut points, shapes, memory), so an app can fail in seconds on
    untrained copies before training any base model.
    """
    bound = inspect.signature(all_pairs).bind(model_a, model_b, None, **request)  # TypeError if unknown
    bound.apply_defaults()
    _, plan, _ = _plan(bound.arguments)
    return {m: "streamed" if m in plan.streamed else "subset" for m in plan.measures}


def _plan(request: Mapping[str, Any]) -> tuple[nn.Module, Plan, dict[str, dict]]:
    """Model B (A for a self-comparison), the checked plan and the per-measure options."""
    r = request
    model_b = r["model_a"] if r["model_b"] is None else r["model_b"]
    options = {k: dict(v) for k, v in (r["options"] or {}).items()}
    plan = make_plan(r["model_a"], model_b, r["cut_points_a"], r["cut_points_b"], r["measures"],
                     r["spatial"], r["linear"], options, r["max_moment_bytes"])  # fmt: skip
    check_subset_size(r["n_subset"])
    return model_b, plan, options


def _one_pass(models, loader, plan: Plan, spatial, sums, picked, policies) -> tuple[int, dict]:
    """Feed every batch once through each model; stream sums and keep the subset's rows
    (``kept[(key, policy)]``, once per spatial policy a subset measure uses)."""
    keys = {*plan.rows, *plan.cols}
    kept: dict[tuple, list[torch.Tensor]] = {(k, p): [] for k in keys for p in set(policies.values())}
    start = 0
    with eval_mode(*models.values()), torch.no_grad():
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            outs = _layer_outputs(models, x, keys)
            if sums is not None:
                sums.update({k: spatial_features(v, spatial, k[1]) for k, v in outs.items()})
            if plan.subset:
                sel = in_subset(picked, start, x.shape[0])
                for (k, policy), rows in kept.items():  # (b, ...) -> (picked in batch, ...) -> rows
                    rows.append(spatial_features(outs[k][sel.to(outs[k].device)], policy, k[1]))
            start += x.shape[0]
    return start, ({k: torch.cat(v) for k, v in kept.items()} if plan.subset else {})


def _layer_outputs(
    models: dict[str, nn.Module], x: torch.Tensor, keys: Iterable[Key]
) -> dict[Key, torch.Tensor]:
    """Run each model's stages in order once, keeping the outputs of the wanted cut points.

    Each model runs on its own device; the outputs are returned on A's, where the pair
    sums and subset measures combine them.
    """
    out: dict[Key, torch.Tensor] = {}
    home = model_device(models["a"], default=x.device)
    for tag in sorted({k[0] for k in keys}):
        wanted = {k[1] for k in keys if k[0] == tag}
        model = models[tag]
        h = x.to(model_device(model, default=x.device))
        for name, stage in model.stages.items():
            h = stage(h)
            if name in wanted:
                out[(tag, name)] = h.to(home)
                if len(wanted) == sum(k[0] == tag for k in out):
                    break  # the rest of the network is not needed
    return out


def _measure_matrix(plan: Plan, measure: Measure, sums, kept, options, policies) -> tuple:
    """One measure's matrix and fact matrices: from the streamed sums, or the subset's rows."""
    if measure.name in plan.streamed:
        debiased = plan.streamed[measure.name]
        return _matrix(plan, measure, lambda u, v: (sums.cka(u, v, debiased), {}))
    kw, p = options.get(measure.name, {}), policies[measure.name]
    return _matrix(plan, measure, lambda u, v: measure.evaluate(kept[u, p], kept[v, p], **kw))


def _matrix(plan: Plan, measure: Measure, value) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fill the ``(L_A, L_B)`` matrix (and one per fact), mirroring symmetric measures in
    self-comparisons; ``value(u, v)`` returns ``(index, facts)``."""
    shape = (len(plan.rows), len(plan.cols))
    M, facts = torch.full(shape, float("nan"), dtype=_F64), {}
    done: dict[tuple[Key, Key], tuple] = {}
    for i, u in enumerate(plan.rows):
        for j, v in enumerate(plan.cols):
            if measure.symmetric and (v, u) in done:
                done[(u, v)] = done[(v, u)]
            else:
                try:
                    done[(u, v)] = value(u, v)
                except (ValueError, TypeError) as err:
                    raise SimilarityInputError(f"{measure.name} of cut points ({u[1]}, {v[1]}): {err}") from err
            M[i, j] = done[(u, v)][0]
            for name, fact in done[(u, v)][1].items():
                facts.setdefault(name, torch.full(shape, float("nan"), dtype=_F64))[i, j] = fact
    return M, facts
