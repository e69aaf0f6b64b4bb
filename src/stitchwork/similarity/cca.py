"""Canonical correlation analysis and its summaries: CCA, SVCCA, PWCCA.

Everything goes through the thin SVD ``Xc = U_x S_x V_x^T`` of the column-centred float64
data. Without ridge the canonical correlations are the singular values of ``U_x^T U_y``
(cosines of the principal angles between the two column spaces), which is the QR/SVD route and
never forms or inverts a covariance matrix. With ridge ``r`` the covariances become
``C_xx = Xc^T Xc / (n-1) + r I``; in the SVD basis this shrinks direction ``k`` of X by
``f_k = (1 + r (n-1) / s_k^2)^(-1/2)`` and the correlations are the singular values of
``diag(f_x) U_x^T U_y diag(f_y)``.

CCA ignores every invertible linear map (and translation) of either input. The centred
columns of X and Y lie in the same ``n - 1``-dimensional space, so whenever
``rank X + rank Y > n - 1`` their column spaces share at least ``rank X + rank Y - (n - 1)``
directions and that many correlations are exactly 1 whatever the data (all of them once
``d >= n - 1``). Without ridge a :class:`DegenerateCCAWarning` says how many, and every result
records the count (``trivial``); pooling conv maps, an SVD cut (SVCCA) or a ridge avoid it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._checks import SimilarityInputError, as_pair, centred64


class DegenerateCCAWarning(UserWarning):
    """CCA without ridge where ``rank X + rank Y > n - 1``: some correlations are forced to 1."""


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations of two representations.

    Attributes
    ----------
    rho
        float64 tensor of the ``min(rank X, rank Y)`` canonical correlations, descending.
    trivial
        How many of them are forced to 1 by the dimensions alone:
        ``max(0, rank X + rank Y - (n - 1))`` without ridge, 0 with a ridge.
    """

    rho: torch.Tensor
    trivial: int = 0

    @property
    def mean_rho(self) -> float:
        """Mean canonical correlation (the SVCCA summary of Raghu et al. 2017)."""
        return float(self.rho.mean())

    @property
    def mean_rho_sq(self) -> float:
        """Mean squared canonical correlation (Yanai's generalised coefficient R^2_CCA)."""
        return float(self.rho.square().mean())


@dataclass(frozen=True)
class _CCAParts:
    rho: torch.Tensor  # (k,)
    P: torch.Tensor  # (rx, k) left singular vectors of the shrunk U_x^T U_y
    s: torch.Tensor  # (rx,) singular values of Xc
    V: torch.Tensor  # (dx, rx) right singular vectors of Xc
    f: torch.Tensor  # (rx,) ridge shrinkage of X's directions
    trivial: int  # correlations forced to 1 by rank X + rank Y > n - 1 (0 with a ridge)


def _svd_basis(Xc: torch.Tensor, keep: int | float | None = None, name: str = "X"):
    """Thin SVD of centred data with numerically null directions dropped, then ``keep`` applied."""
    U, s, Vh = torch.linalg.svd(Xc, full_matrices=False)  # (n, r), (r,), (r, d)
    eps = torch.finfo(s.dtype).eps
    rank = int((s > s[0] * max(Xc.shape) * eps).sum()) if s[0] > 0 else 0
    if rank == 0:
        raise SimilarityInputError(f"{name} has zero variance after centring; CCA is undefined")
    k = rank if keep is None else _dims_to_keep(s[:rank], keep, name)
    return U[:, :k], s[:k], Vh[:k].T


def _dims_to_keep(s: torch.Tensor, keep: int | float, name: str) -> int:
    """Number of leading SVD directions for SVCCA: an int count or a fraction of sum(s^2)."""
    if isinstance(keep, bool) or not isinstance(keep, (int, float)):
        raise SimilarityInputError(f"keep must be an int or a float in (0, 1], got {keep!r}")
    if isinstance(keep, int):
        if not 1 <= keep <= s.numel():
            raise SimilarityInputError(
                f"keep={keep} dims but the centred {name} has rank {s.numel()}; use 1..{s.numel()}"
            )
        return keep
    if not 0.0 < keep <= 1.0:
        raise SimilarityInputError(f"keep as a variance fraction must be in (0, 1], got {keep!r}")
    frac = torch.cumsum(s.square(), 0) / s.square().sum()
    return min(int((frac < keep - 1e-12).sum()) + 1, s.numel())


def _cca_parts(
    X: torch.Tensor,
    Y: torch.Tensor,
    ridge: float,
    keep: int | float | None = None,
) -> _CCAParts:
    if not ridge >= 0.0:
        raise SimilarityInputError(f"ridge must be >= 0, got {ridge!r}")
    n = X.shape[0]
    Ux, sx, Vx = _svd_basis(centred64(X), keep, "X")
    Uy, sy, _ = _svd_basis(centred64(Y), keep, "Y")
    trivial = _trivial_count(X.shape, Y.shape, sx.numel(), sy.numel()) if ridge == 0.0 else 0
    fx = (1.0 + ridge * (n - 1) / sx.square()).rsqrt()
    fy = (1.0 + ridge * (n - 1) / sy.square()).rsqrt()
    M = fx[:, None] * (Ux.T @ Uy) * fy[None, :]  # (rx, ry)
    P, rho, _ = torch.linalg.svd(M, full_matrices=False)
    return _CCAParts(rho=rho.clamp(0.0, 1.0), P=P, s=sx, V=Vx, f=fx, trivial=trivial)


def _trivial_count(shape_x: tuple, shape_y: tuple, rx: int, ry: int) -> int:
    """``max(0, rx + ry - (n - 1))``, warning when positive (the correlations forced to 1)."""
    n = shape_x[0]
    forced = max(0, rx + ry - (n - 1))
    if forced:
        warnings.warn(
            f"CCA without ridge on X {tuple(shape_x)}, Y {tuple(shape_y)}: rank X + rank Y = "
            f"{rx} + {ry} > n - 1 = {n - 1}, so {forced} of the {min(rx, ry)} canonical "
            "correlations are forced to 1 by the dimensions alone; use spatial='avgpool', "
            "fewer dimensions (svcca keep), more samples or ridge > 0",
            DegenerateCCAWarning,
            stacklevel=4,
        )
    return forced


def cca(X: Any, Y: Any, ridge: float = 0.0, spatial: str | None = None) -> CCAResult:
    """Canonical correlations between ``(n, dx)`` and ``(n, dy)`` representations.

    Parameters
    ----------
    X, Y
        Activations (torch or numpy), rows paired; reduced in float64 after centring.
    ridge
        Added to the diagonal of each covariance ``Xc^T Xc / (n-1)``; 0 is plain CCA (a
        :class:`DegenerateCCAWarning` is issued when ``rank X + rank Y > n - 1``, saying how
        many correlations that forces to 1).
    spatial
        Policy for conv maps: ``"flatten"``, ``"samples"`` or ``"avgpool"``.

    Returns
    -------
    CCAResult
        ``rho`` (descending), with ``mean_rho`` and ``mean_rho_sq``, and ``trivial``.
    """
    X, Y = as_pair(X, Y, spatial)
    p = _cca_parts(X, Y, ridge)
    return CCAResult(p.rho, p.trivial)


def svcca(
    X: Any, Y: Any, keep: int | float = 0.99, ridge: float = 0.0, spatial: str | None = None
) -> CCAResult:
    """SVCCA (Raghu et al. 2017): CCA between the leading SVD directions of each input.

    Parameters
    ----------
    keep
        An ``int`` keeps that many leading directions of each centred input; a ``float`` in
        (0, 1] keeps the fewest leading directions whose squared singular values sum to at least
        that fraction of the total ``sum(s^2)`` (the explained variance). Default 0.99.
    ridge, spatial
        As in :func:`cca`.

    Returns
    -------
    CCAResult
        The SVCCA similarity is ``result.mean_rho``; ``trivial`` counts after the SVD cut.
    """
    X, Y = as_pair(X, Y, spatial)
    p = _cca_parts(X, Y, ridge, keep)
    return CCAResult(p.rho, p.trivial)


def pwcca(X: Any, Y: Any, ridge: float = 0.0, spatial: str | None = None) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), weighted by the neurons of ``X``.

    With ``h_i`` the i-th canonical variate of X (the n-vector ``Xc a_i``, scaled to unit norm)
    and ``z_j`` the j-th centred neuron (column) of X::

        alpha_i = sum_j |<h_i, z_j>|,        PWCCA = sum_i alpha_i rho_i / sum_i alpha_i

    Not symmetric: the weights come from X, the first argument. Other libraries differ (one
    weights by whichever input has fewer neurons and projects *uncentred* activations), so their
    numbers are not comparable with this definition. :func:`pwcca_result` also returns the
    count of trivial correlations.
    """
    return pwcca_result(X, Y, ridge, spatial)[0]


def pwcca_result(X: Any, Y: Any, ridge: float = 0.0, spatial: str | None = None) -> tuple[float, int]:
    """:func:`pwcca` and the number of its correlations forced to 1 (``CCAResult.trivial``)."""
    X, Y = as_pair(X, Y, spatial)
    p = _cca_parts(X, Y, ridge)
    G = p.f[:, None] * p.P  # (rx, k): variate i is U_x G[:, i], up to its norm
    G = G / G.norm(dim=0, keepdim=True)
    # <h_i, z_j> = (U_x G)^T U_x S_x V_x^T = G^T S_x V_x^T  -> (k, dx)
    alpha = (G.T @ (p.s[:, None] * p.V.T)).abs().sum(dim=1)
    return float((alpha * p.rho).sum() / alpha.sum()), p.trivial
