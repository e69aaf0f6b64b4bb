"""``stitch_matrix(...)``: every (front, back) pair of two models in one job.

The stitching matrix of Csiszárik et al., Bansal et al. and Balogh & Jelasity, computed with
shared passes instead of one job per cell: direct matching from one streamed pass for all
pairs (:mod:`.matrix_direct`), task-loss methods in one data loop per round of pairs
(:mod:`.matrix_task`), and every metric from one test pass per back plus the training-split
figures (from the direct fit's sums where the map allows, else one training pass)
(:mod:`.matrix_metrics`). Each pair's record has the keys of a single-pair
:func:`~.api.stitch` record (plus ``front``, ``back``, ``status``); direct entries equal the
single-pair values to float rounding, task-loss entries are computed from the same
initialisation and batches (see :mod:`.matrix_task`).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..models.base import CutModel
from . import matching as matching_methods
from .api import describe_stitch, method_name, resolve_matching, resolve_stitch
from .base import StitchFactory
from .matching import MatchingMethod
from .matrix_direct import ActivationStore, fit_direct, moment_figures_apply
from .matrix_metrics import matrix_metrics
from .matrix_plan import MatrixPair, chunks, plan_pairs
from .matrix_task import fit_task

#: Metrics gathered into ``front x back`` matrices.
MATRIX_METRICS = ("stitched_acc", "relative_acc", "penalty", "dm_residual_fit", "dm_residual_test",
                  "dm_residual_centered_fit", "dm_residual_centered_test",
                  "cka_stitched_target", "agreement_b", "kl_b", "ood_score")  # fmt: skip
#: Matching methods a matrix job runs (what each means for :func:`~.matrix_task.fit_task`).
TASK_METHODS = {"task_loss": {}, "soft_task_loss": {"loss": "soft"}, "direct_then_task": {"direct_init": True},
                "l1": {}}  # fmt: skip


def matrix_method(method: MatchingMethod) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(name, fit options, l1 options)`` of a built-in matching method bound with its options.

    Defaults are read from the method's own signature, so a matrix uses the values a
    single-pair job would. Raises ``ValueError`` for a method a matrix cannot run.
    """
    func, bound = method, {}
    while isinstance(func, functools.partial):
        bound = {**func.keywords, **bound}
        func = func.func
    name = method_name(func)
    if name == "direct":
        return name, {**_defaults(func), **bound}, {}
    if name not in TASK_METHODS or getattr(matching_methods, name, None) is not func:
        raise ValueError(f"a stitching matrix runs the built-in matching methods direct, "
                         f"{', '.join(TASK_METHODS)}; got {name!r}")  # fmt: skip
    options = {**_defaults(matching_methods.task_loss), **_defaults(func), **bound, **TASK_METHODS[name]}
    extra = {k: options.pop(k) for k in ("l1_lambda", "sparsity_tol") if k in options}
    if name == "l1":
        options["l1"] = extra["l1_lambda"]
    return name, options, extra


def _defaults(func: Callable) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(func).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}  # fmt: skip


def stitch_matrix(
    model_a: CutModel, fronts: Sequence[str], model_b: CutModel, backs: Sequence[str], data, *,
    stitch: str | StitchFactory = "affine", matching: str | MatchingMethod = "direct",
    stitch_options: dict[str, Any] | None = None, matching_options: dict[str, Any] | None = None,
    seed: int = 0, max_pairs_per_step: int = 16, metric_batch_size: int = 512,
    done: Mapping[tuple[str, str], dict] | None = None,
    on_records: Callable[[list[dict]], None] | None = None,
) -> list[dict]:  # fmt: skip
    """Stitch A's front at every cut point in ``fronts`` to B's back at every one in ``backs``.

    Parameters are those of :func:`~.api.stitch`, plus:

    fronts, backs
        Cut point names of A and B (the matrix rows and columns).
    max_pairs_per_step
        Pairs whose stitched inputs go through B's back together, and pairs trained in one
        round of a task-loss method: bounds memory.
    done
        Records of pairs already finished (``(front, back) -> record``), kept as they are.
    on_records
        Called with the records of pairs as they complete (skipped pairs first), so a job
        can write them before the matrix ends.

    Returns
    -------
    list of dict
        One record per pair, row by row: ``front``, ``back``, ``status`` (``ok``, ``skipped``
        or ``failed``, with ``reason``) and, when ok, the keys of a single-pair record.
    """
    data.setup()
    factory = resolve_stitch(stitch, **(stitch_options or {}))
    method = resolve_matching(matching, **(matching_options or {}))
    name, options, extra = matrix_method(method)
    done = dict(done or {})
    pairs = plan_pairs(model_a, fronts, model_b, backs, factory, seed)
    records = {(p.front, p.back): done[(p.front, p.back)] for p in pairs if (p.front, p.back) in done}
    emit = functools.partial(_emit, records, on_records, method, model_a, model_b)
    emit([p for p in pairs if p.status == "skipped" and (p.front, p.back) not in records], 0.0, 0.0)
    todo = [p for p in pairs if p.status == "pending" and (p.front, p.back) not in records]
    if name == "direct":
        _direct(todo, model_a, model_b, data, options, max_pairs_per_step, metric_batch_size, emit)
    else:
        order = {b: i for i, b in enumerate(model_b.cut_points)}
        todo.sort(key=lambda p: order[p.back])  # rounds of pairs sharing a back stack best
        for part in chunks(todo, max_pairs_per_step):
            _task_round(list(part), model_a, model_b, data, seed, options, extra, max_pairs_per_step,
                        metric_batch_size, emit)  # fmt: skip
    return [records[(p.front, p.back)] for p in pairs]


def _direct(todo, model_a, model_b, data, options, max_pairs_per_step, metric_batch_size, emit) -> None:
    if not todo:
        return
    start = time.perf_counter()
    loader = data.loader("train", batch_size=options["batch_size"], shuffle=False)
    # pairs whose training-split figures do not come from the fit's sums need a training
    # pass; it reuses the fit's activations when it walks the same batches
    again = not all(moment_figures_apply(p) for p in todo) and options["batch_size"] == metric_batch_size
    store = ActivationStore(len(loader)) if again else None
    figures = fit_direct(todo, model_a, model_b, loader, options["ridge"], store)
    fit_s = (time.perf_counter() - start) / len(todo)
    matrix_metrics(todo, model_a, model_b, data, batch_size=metric_batch_size, max_pairs_per_step=max_pairs_per_step,
                   train_batches=store.batches if store is not None else None, fit_figures=figures)  # fmt: skip
    emit(todo, fit_s, (time.perf_counter() - start) / len(todo))


def _task_round(part, model_a, model_b, data, seed, options, extra, max_pairs_per_step, metric_batch_size, emit) -> None:
    start = time.perf_counter()
    fit_task(part, model_a, model_b, data, seed=seed, max_pairs_per_step=max_pairs_per_step, **options)
    train_s = (time.perf_counter() - start) / len(part)
    for pair in part:
        if "history" in pair.report and pair.report.get("epochs"):
            pair.report["train_time_s"] = train_s
        if "l1_lambda" in extra:
            w = pair.layer.weight_matrix().detach().abs()
            tol = extra["sparsity_tol"]
            pair.report.update(l1_lambda=extra["l1_lambda"], sparsity=float((w <= tol * w.max()).float().mean()))
    emit([p for p in part if p.status == "failed"], train_s, train_s)
    ok = [p for p in part if p.status == "pending"]
    matrix_metrics(ok, model_a, model_b, data, batch_size=metric_batch_size, max_pairs_per_step=max_pairs_per_step)
    emit(ok, train_s, (time.perf_counter() - start) / len(part))


def _emit(records, on_records, method, model_a, model_b, pairs: list[MatrixPair], fit_s: float, wall_s: float) -> None:
    """Turn finished pairs into records, keep them and hand them to ``on_records``."""
    if not pairs:
        return
    new = []
    for pair in pairs:
        record: dict[str, Any] = {"front": pair.front, "back": pair.back,
                                  "index_a": model_a.cut_points.index(pair.front),
                                  "index_b": model_b.cut_points.index(pair.back)}  # fmt: skip
        if pair.status in ("skipped", "failed"):
            record.update(status=pair.status, reason=pair.reason)
        else:
            pair.status = "ok"
            record.update(status="ok", **describe_stitch(pair.stitched, pair.front, pair.back, method), **pair.report,
                          matching_wall_s=fit_s, **pair.metrics, wall_time_s=wall_s)  # fmt: skip
        records[(pair.front, pair.back)] = record
        new.append(record)
    if on_records is not None:
        on_records(new)


def matrices(records: Sequence[dict], fronts: Sequence[str], backs: Sequence[str],
             metrics: Sequence[str] = MATRIX_METRICS) -> dict[str, list[list[float | None]]]:  # fmt: skip
    """``metric -> rows x columns`` nested lists (rows: ``fronts``), None where a pair is not ok."""
    cells = {(r["front"], r["back"]): r for r in records}
    out = {}
    for metric in metrics:
        out[metric] = [[_cell(cells.get((f, b)), metric) for b in backs] for f in fronts]
    return out


def _cell(record: dict | None, metric: str) -> float | None:
    if record is None or record.get("status") != "ok":
        return None
    value = record.get(metric)
    return float(value) if isinstance(value, (int, float)) else None
