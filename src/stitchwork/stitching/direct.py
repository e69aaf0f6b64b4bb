"""Direct matching: closed-form fits of ``T(A_i) ≈ B_j`` from streamed second moments.

One pass over the fit split accumulates ``Σx``, ``Σy``, ``XᵀX``, ``XᵀY`` and ``diag(YᵀY)`` in
float64 (rows shifted by the first batch's mean so that large offsets do not cancel digits);
every fitter then solves from the centred moments in ``O(d³)``. This is the exact global
least-squares solution (not an average of per-batch solutions), in memory independent of
the number of rows. Every fitter has the signature of :class:`~.base.Fitter`.

``ridge`` is relative: ``ridge · trace(Cxx) / dx`` is added to the diagonal of the input
covariance ``Cxx``, so one value suits activations of any scale. ``ridge=0`` with a singular
``Cxx`` (dead channels) gives the minimum-norm solution.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from ..utils.moments import Moments
from .base import CrossMoments, StitchWeights

_F64 = torch.float64


class MomentAccumulator(Moments):
    """Streams paired rows ``x (m, dx)``, ``y (m, dy)`` into :class:`CrossMoments`.

    The shared float64 :class:`~stitchwork.utils.moments.Moments` (rows shifted by the first
    batch's mean) keeping ``XᵀX`` in full, ``diag(YᵀY)`` and ``XᵀY``.
    """

    def __init__(self) -> None:
        super().__init__(xx="full", yy="diag", cross=True)

    def moments(self) -> CrossMoments:
        """Centred covariances at the full-data means."""
        if self.n < 2:
            raise ValueError(f"need at least 2 rows to fit a stitch, got {self.n}")
        return CrossMoments(
            n=self.n, mean_x=self.mean_x, mean_y=self.mean_y,
            cxx=self.cov_x(), cxy=self.cov_xy(), cyy_diag=self.cov_y(),
        )  # fmt: skip


def moments_of(x: torch.Tensor, y: torch.Tensor) -> CrossMoments:
    """:class:`CrossMoments` of rows held in memory (one accumulator update)."""
    acc = MomentAccumulator()
    acc.update(x, y)
    return acc.moments()


def _ridge(moments: CrossMoments, ridge: float) -> float:
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    return ridge * float(moments.cxx.diagonal().mean())


def _solve(cxx: torch.Tensor, rhs: torch.Tensor, lam: float) -> torch.Tensor:
    """``(cxx + lam I)⁺ rhs`` by eigendecomposition (minimum norm when singular)."""
    evals, evecs = torch.linalg.eigh(cxx)
    evals = evals + lam
    cutoff = evals.abs().max().clamp_min(1e-300) * cxx.shape[0] * torch.finfo(_F64).eps
    inv = torch.where(evals > cutoff, 1.0 / evals, torch.zeros_like(evals))
    return evecs @ (inv[:, None] * (evecs.T @ rhs))


def weights_from_map(
    moments: CrossMoments, weight: torch.Tensor, bias: torch.Tensor | None = None,
    index: torch.Tensor | None = None,
) -> StitchWeights:
    """Package ``weight (out, in)`` with the least-squares bias and the fit statistics."""
    if bias is None:
        bias = moments.mean_y - weight @ moments.mean_x
    out_var = ((weight @ moments.cxx) * weight).sum(1)  # diag(W Cxx Wᵀ)
    return StitchWeights(
        weight=weight, bias=bias, in_mean=moments.mean_x, in_var=moments.cxx.diagonal().clone(),
        out_mean=weight @ moments.mean_x + bias, out_var=out_var, index=index,
    )  # fmt: skip


def least_squares_fit(moments: CrossMoments, ridge: float = 0.0) -> StitchWeights:
    """Affine least squares ``argmin ‖X W + b − Y‖²`` (plus the relative ridge)."""
    w = _solve(moments.cxx, moments.cxy, _ridge(moments, ridge))  # (dx, dy)
    return weights_from_map(moments, w.T.contiguous())


def reduced_rank_fit(moments: CrossMoments, ridge: float = 0.0, *, rank: int) -> StitchWeights:
    """Reduced-rank regression: the best rank-``rank`` affine map (Izenman 1975).

    With ``W`` the full (ridge) solution, the fitted values' covariance ``Wᵀ Cxx W`` has top
    eigenvectors ``V_r``; the optimum is ``W V_r V_rᵀ``.
    """
    check_rank(rank, moments.cxy.shape[0], moments.cxy.shape[1])
    w = _solve(moments.cxx, moments.cxy, _ridge(moments, ridge))  # (dx, dy)
    _, evecs = torch.linalg.eigh(w.T @ moments.cxx @ w)  # ascending eigenvalues
    v = evecs[:, -rank:]  # (dy, r)
    return weights_from_map(moments, (w @ v @ v.T).T.contiguous())


def procrustes_fit(moments: CrossMoments, ridge: float = 0.0, *, scale: bool = True) -> StitchWeights:
    """Orthogonal Procrustes: ``argmin ‖s Xc Q − Yc‖`` over (semi-)orthogonal ``Q``.

    ``Q = U Vᵀ`` from the SVD of ``Cxy``; the optional scalar ``s = Σσ / trace(Cxx)`` is the
    least-squares scale. ``ridge`` is ignored (the problem is always well posed).
    """
    u, s, vh = torch.linalg.svd(moments.cxy, full_matrices=False)  # (dx, k), (k,), (k, dy)
    factor = s.sum() / moments.cxx.trace().clamp_min(1e-300) if scale else torch.ones((), dtype=_F64)
    return weights_from_map(moments, factor * (u @ vh).T)


def diagonal_fit(moments: CrossMoments, ridge: float = 0.0) -> StitchWeights:
    """Per-channel scale and shift: channel k of B from channel k of A alone."""
    check_square(moments, "diagonal")
    var = moments.cxx.diagonal() + _ridge(moments, ridge)
    cov = moments.cxy.diagonal()
    scale = torch.where(var > 0, cov / var.clamp_min(1e-300), torch.zeros_like(var))
    return weights_from_map(moments, torch.diag(scale))


def permutation_fit(moments: CrossMoments, ridge: float = 0.0, *, affine: bool = True) -> StitchWeights:
    """Hard one-to-one matching of channels by correlation (``linear_sum_assignment``).

    Output channel j copies the input channel ``index[j]`` that the assignment maximising the
    summed correlation gives it; with ``affine`` each copy also gets a least-squares scale and
    shift, otherwise the map is the bare permutation.
    """
    check_square(moments, "permutation")
    sd_x = moments.cxx.diagonal().clamp_min(0).sqrt()
    sd_y = moments.cyy_diag.clamp_min(0).sqrt()
    corr = moments.cxy / (torch.outer(sd_x, sd_y) + 1e-12)  # (dx, dy)
    rows, cols = linear_sum_assignment(corr.cpu().numpy(), maximize=True)
    index = torch.empty(len(cols), dtype=torch.long)
    index[torch.as_tensor(cols)] = torch.as_tensor(rows)  # output j <- input index[j]
    index = index.to(moments.cxy.device)
    out = torch.arange(len(index), device=index.device)
    weight = torch.zeros_like(moments.cxy.T)
    if affine:
        var = moments.cxx.diagonal()[index] + _ridge(moments, ridge)
        cov = moments.cxy[index, out]
        weight[out, index] = torch.where(var > 0, cov / var.clamp_min(1e-300), torch.zeros_like(var))
        return weights_from_map(moments, weight, index=index)
    weight[out, index] = 1.0
    return weights_from_map(moments, weight, torch.zeros_like(moments.mean_y), index=index)


def check_square(moments: CrossMoments, kind: str) -> None:
    dx, dy = moments.cxy.shape
    if dx != dy:
        raise ValueError(f"stitch {kind!r} needs equal widths, got {dx} -> {dy}")


def check_rank(rank: int, d_in: int, d_out: int) -> None:
    """A rank must be a positive integer no larger than the narrower side of the map."""
    if int(rank) != rank or rank < 1 or rank > min(d_in, d_out):
        raise ValueError(
            f"rank {rank!r} is invalid for a {d_in} -> {d_out} stitch: it must be an integer "
            f"between 1 and the width min({d_in}, {d_out}) = {min(d_in, d_out)}"
        )
