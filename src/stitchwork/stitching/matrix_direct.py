"""Direct matching of a whole stitching matrix from one streamed pass over the fit split.

Per batch, A runs once and B runs once, every requested cut point taken on the way
(:func:`~stitchwork.cut.cut_outputs`). The float64 sums are shared as far as the algebra
allows: per input key (A's layer, resized to one of B's resolutions) ``Σx`` and ``XᵀX``,
per target key (B's layer) ``Σy`` and ``YᵀY`` (its diagonal only when no pair reads the
rest: see below), and per pair only the cross product
``XᵀY``, computed for all backs of one input key by one GEMM against their rows side by
side. Rows are shifted by the first batch's means and reduced exactly as
:class:`~.direct.MomentAccumulator` does, so every pair's moments equal those of its own
single-pair fit. Least-squares pairs of one input key are then solved together (one
eigendecomposition of their shared ``Cxx``); other fitters run per pair.

The same sums give the metrics' training-split figures of a pair whose fitted map is affine
in the rows (``StitchLayer.affine_rows``): ``Σ‖W x + b − y‖²`` in closed form and B's row
mean and covariance (its Gaussian), so the metrics need no second pass over the training
split for them; they differ from a pass that maps the rows in float32 by float32 rounding
only (relative 3e-9 measured, 1e-7 tested).

Memory: ``8 (Σ_keys d_x² + Σ_pairs d_x d_y)`` bytes of sums plus one batch of rows, plus,
when the caller passes an :class:`ActivationStore`, the pass's activations up to its budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import torch

from ..cut import cut_outputs
from ..models.base import CutModel
from ..utils.modules import model_device
from ..utils.moments import RowShift, column_squares
from .base import CrossMoments
from .direct import _ridge, _solve, least_squares_fit, weights_from_map
from .matrix_plan import MatrixPair, group_by
from .metrics import RowSummary

_F64 = torch.float64


#: Default budget of an :class:`ActivationStore` (bytes of float32 activations kept).
STORE_BYTES = 256 * 2**20


class ActivationStore:
    """The fit pass's activations per batch, kept for the metrics' pass over the same split.

    Each batch is ``(inputs, rows_b)``: A's prepared inputs per input key and B's rows per
    target key, the very tensors the fit used, so a later pass over them gives the values it
    would get from running A and B again. Kept only while the whole split fits in
    ``max_bytes`` (estimated from the first batch); otherwise :attr:`batches` is None.
    """

    def __init__(self, batch_count: int, max_bytes: int = STORE_BYTES) -> None:
        self.batch_count, self.max_bytes = batch_count, max_bytes
        self.batches: list[tuple[dict, dict]] | None = []

    def add(self, inputs: dict, rows_b: dict) -> None:
        if self.batches is None:
            return
        if not self.batches:
            size = sum(t.numel() * t.element_size() for t in (*inputs.values(), *rows_b.values()))
            if size * self.batch_count > self.max_bytes:
                self.batches = None
                return
        self.batches.append((inputs, rows_b))


class _Sums:
    """Float64 sums of one kind of rows shifted by the first batch's mean (as
    :class:`~stitchwork.utils.moments.Moments` keeps them): ``Σr`` and ``RᵀR`` (``full``) or
    its diagonal. :meth:`add` returns the shifted rows, which the cross products reuse."""

    def __init__(self, full: bool) -> None:
        self.full, self.n, self.shift, self.s, self.ss = full, 0, RowShift(), None, None

    def add(self, rows: torch.Tensor) -> torch.Tensor:
        shifted = self.shift(rows)  # (m, d) float64
        if self.s is None:
            d = shifted.shape[1]
            self.s = torch.zeros(d, dtype=_F64, device=rows.device)
            self.ss = torch.zeros((d, d) if self.full else d, dtype=_F64, device=rows.device)
        self.s += shifted.sum(0)
        if self.full:
            self.ss.addmm_(shifted.T, shifted)
        else:
            self.ss += column_squares(shifted)
        self.n += shifted.shape[0]
        return shifted

    def mean_shifted(self) -> torch.Tensor:
        return self.s / self.n

    def diag(self) -> torch.Tensor:
        """``diag(RᵀR)`` of the shifted rows."""
        return self.ss.diagonal() if self.full else self.ss

    def summary(self) -> RowSummary:
        """Count, mean and covariance of the rows (needs ``full``), as :class:`~.metrics.RowStats` gives them."""
        m = self.mean_shifted()
        return RowSummary(self.n, m + self.shift.shift, self.ss / self.n - torch.outer(m, m))


@torch.no_grad()
def fit_direct(
    pairs: Sequence[MatrixPair], model_a: CutModel, model_b: CutModel, loader: Iterable, ridge: float,
    store: ActivationStore | None = None,
) -> dict[int, tuple[float, RowSummary]]:  # fmt: skip
    """Fit every pair's stitch by least squares (its layer's own fitter) from one pass.

    Sets ``pair.report`` to ``{"fit_rows", "ridge"}`` as :func:`~.matching.direct` reports it
    and loads the weights into ``pair.layer``. Pairs whose stitch has nothing to fit get
    ``fit_rows`` 0. ``store`` receives every batch's inputs and target rows (float32).

    Returns the training-split figures the metrics need, ``id(pair) -> (Σ‖T(A_i) − B_j‖²,
    B_j's row summary)``, for the pairs whose fitted map is affine in the rows
    (:func:`moment_figures_apply`), computed from the fit's own sums: no second pass.
    """
    fitted = [p for p in pairs if p.layer.fitter() is not None]
    for pair in pairs:
        pair.report = {"fit_rows": 0, "ridge": ridge}
    if not fitted:
        return {}
    groups = group_by(fitted, "input_key")
    x_sums = {k: _Sums(full=True) for k in groups}
    full_y = {p.target_key for p in fitted if moment_figures_apply(p)}  # their Gaussian needs YᵀY
    y_sums = {p.target_key: _Sums(full=p.target_key in full_y) for p in fitted}
    cross: dict[tuple, torch.Tensor] = {}
    fronts, backs = sorted({p.front for p in fitted}), sorted({p.back for p in fitted})
    layers = {p.target_key: p.layer for p in reversed(fitted)}  # the first pair of each target key
    for x, *_ in loader:
        x = x.to(model_device(model_a))
        acts_a, acts_b = cut_outputs(model_a, x, fronts), cut_outputs(model_b, x, backs)
        rows_b = {key: layers[key].rows(acts_b[key[0]]) for key in y_sums}  # (rows, d_y) float32
        ys = {key: sums.add(rows_b[key]) for key, sums in y_sums.items()}  # shifted, float64
        inputs, y_cats = {}, {}  # fronts of one resolution share their targets' rows side by side
        for key, group in groups.items():
            layer = group[0].layer
            inputs[key] = layer.prepare(acts_a[key[0]])
            xs = x_sums[key].add(layer.rows(inputs[key]))  # (rows, d_x)
            targets = tuple(p.target_key for p in group)
            if targets not in y_cats:
                y_cats[targets] = torch.cat([ys[t] for t in targets], 1)  # (rows, Σ d_y)
            y_cat = y_cats[targets]
            if key not in cross:
                cross[key] = torch.zeros(xs.shape[1], y_cat.shape[1], dtype=_F64, device=xs.device)
            cross[key].addmm_(xs.T, y_cat)
        if store is not None:
            store.add(inputs, rows_b)
    summaries = {k: y_sums[k].summary() for k in full_y}  # B's Gaussian, once per target
    figures = {}
    for key, group in groups.items():
        ys = [y_sums[p.target_key] for p in group]
        _solve_group(group, x_sums[key], ys, cross[key], ridge)
        for pair, y, (lo, hi) in zip(group, ys, _column_blocks(ys), strict=True):
            if moment_figures_apply(pair):
                residual = _residual_from_sums(pair.layer.affine_rows(), x_sums[key], y, cross[key][:, lo:hi])
                figures[id(pair)] = (residual, summaries[pair.target_key])
    return figures


def _column_blocks(ys: list[_Sums]) -> list[tuple[int, int]]:
    """``(lo, hi)`` of each target's columns in the side-by-side cross products."""
    bounds = torch.tensor([0] + [y.shift.width for y in ys]).cumsum(0).tolist()
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def moment_figures_apply(pair: MatrixPair) -> bool:
    """Whether a pair's training-split figures come from the fit's sums: its map is affine in
    the rows, and they are channel rows (for flatten maps, ``d_x² d_y`` flops of sums would
    cost more than mapping the examples again)."""
    return not pair.layer.flattens and pair.layer.fitter() is not None and pair.layer.affine_rows() is not None


def _residual_from_sums(affine, xs: _Sums, ys: _Sums, cross: torch.Tensor) -> float:
    """``Σ‖W x + b − y‖²`` over the fit rows, from their float64 sums around the shifts.

    With ``x' = x − s_x``, ``y' = y − s_y`` and ``c = W s_x + b − s_y``: ``tr(W Σx'x'ᵀ Wᵀ)
    − 2 tr(W Σx'y'ᵀ) + tr(Σy'y'ᵀ) + 2 cᵀ(W Σx' − Σy') + n‖c‖²``. ``W``, ``b`` are the layer's
    own parameters, so this is the residual of the map the metrics evaluate (its float32
    arithmetic aside); clamped at 0 against float64 cancellation when the fit is exact.
    """
    w, b = (t.to(_F64) for t in affine)
    c = w @ xs.shift.shift + b - ys.shift.shift
    total = (((w @ xs.ss) * w).sum() - 2 * (w * cross.T).sum() + ys.diag().sum()
             + 2 * c @ (w @ xs.s - ys.s) + xs.n * c @ c)  # fmt: skip
    return max(float(total), 0.0)


def _joint_moments(xs: _Sums, ys: list[_Sums], cross: torch.Tensor) -> CrossMoments:
    """Moments of one input key against all its targets side by side (columns: ``Σ d_y``)."""
    if xs.n < 2:
        raise ValueError(f"need at least 2 rows to fit a stitch, got {xs.n}")
    n, mx = xs.n, xs.mean_shifted()
    my = torch.cat([y.mean_shifted() for y in ys])
    return CrossMoments(
        n=n, mean_x=mx + xs.shift.shift, mean_y=my + torch.cat([y.shift.shift for y in ys]),
        cxx=xs.ss / n - torch.outer(mx, mx), cxy=cross / n - torch.outer(mx, my),
        cyy_diag=torch.cat([y.diag() for y in ys]) / n - my.square(),
    )  # fmt: skip


def _solve_group(group: list[MatrixPair], xs: _Sums, ys: list[_Sums], cross: torch.Tensor, ridge: float) -> None:
    """Each pair's moments (a column block of the joint ones), then its weights."""
    if any(y.n != xs.n for y in ys):
        raise ValueError(f"rows of A ({xs.n}) and B ({[y.n for y in ys]}) differ for {group[0].front}")
    joint = _joint_moments(xs, ys, cross)
    moments = [
        dataclasses.replace(joint, mean_y=joint.mean_y[lo:hi], cxy=joint.cxy[:, lo:hi], cyy_diag=joint.cyy_diag[lo:hi])
        for lo, hi in _column_blocks(ys)
    ]  # fmt: skip
    solved = [i for i, p in enumerate(group) if p.layer.fitter() is least_squares_fit]
    if solved:  # one eigendecomposition of the shared Cxx for all of them
        w = _solve(joint.cxx, torch.cat([moments[i].cxy for i in solved], 1), _ridge(joint, ridge))  # (d_x, Σ d_y)
        parts = w.split([moments[i].cxy.shape[1] for i in solved], 1)
        for i, part in zip(solved, parts, strict=True):
            group[i].layer.load_weights(weights_from_map(moments[i], part.T.contiguous()))
    for i, (pair, m) in enumerate(zip(group, moments, strict=True)):
        if i not in solved:
            pair.layer.load_weights(pair.layer.fitter()(m, ridge))
        pair.report["fit_rows"] = xs.n
