"""Canonical correlation analysis and its summaries: CCA, SVCCA, PWCCA.

Everything goes through the thin SVD ``Xc = U_x S_x V_x^T`` of the column-centred float64
data. Without ridge the canonical correlations are the singular values of ``U_x^T U_y``
(cosines of the principal angles between the two column spaces), which is the QR/SVD route and
never forms or inverts a covariance matrix. With ridge ``r`` the covariances become
``C_xx = Xc^T Xc / (n-1) + r I``; in the SVD basis this shrinks direction ``k`` of X by
``f_k = (1 + r (n-1) / s_k^2)^(-1/2)`` and the correlations are the singular values of
``diag(f_x) U_x^T U_y diag(f_y)``.

CCA ignores every invertible linear map (and translation) of either input, so when
``d >= n - 1`` the centred data span the whole sample space and all correlations are
trivially 1: a warning says so and a ridge is the remedy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._checks import SimilarityInputError, as_pair, centred64


class DegenerateCCAWarning(UserWarning):
    """CCA without ridge on inputs with d >= n - 1: all canonical correlations are 1."""


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations of two representations.

    Attributes
    ----------
    rho
        float64 tensor of the ``min(rank X, rank Y)`` canonical correlations, descending.
    """

    rho: torch.Tensor

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
    if ridge == 0.0 and max(sx.numel(), sy.numel()) >= n - 1:
        warnings.warn(
            f"CCA without ridge on X {tuple(X.shape)}, Y {tuple(Y.shape)}: one input spans all "
            f"n - 1 = {n - 1} centred sample directions (d >= n - 1), so every canonical "
            "correlation is trivially 1; use more samples, ridge > 0 or svcca",
            DegenerateCCAWarning,
            stacklevel=3,
        )
    fx = (1.0 + ridge * (n - 1) / sx.square()).rsqrt()
    fy = (1.0 + ridge * (n - 1) / sy.square()).rsqrt()
    M = fx[:, None] * (Ux.T @ Uy) * fy[None, :]  # (rx, ry)
    P, rho, _ = torch.linalg.svd(M, full_matrices=False)
    return _CCAParts(rho=rho.clamp(0.0, 1.0), P=P, s=sx, V=Vx, f=fx)


def cca(X: Any, Y: Any, ridge: float = 0.0, spatial: str | None = None) -> CCAResult:
    """Canonical correlations between ``(n, dx)`` and ``(n, dy)`` representations.

    Parameters
    ----------
    X, Y
        Activations (torch or numpy), rows paired; reduced in float64 after centring.
    ridge
        Added to the diagonal of each covariance ``Xc^T Xc / (n-1)``; 0 is plain CCA (a
        :class:`DegenerateCCAWarning` is issued when an input spans all ``n - 1`` centred
        directions, as it does whenever ``d >= n - 1``).
    spatial
        Policy for conv maps: ``"flatten"``, ``"samples"`` or ``"avgpool"``.

    Returns
    -------
    CCAResult
        ``rho`` (descending), with ``mean_rho`` and ``mean_rho_sq``.
    """
    X, Y = as_pair(X, Y, spatial)
    return CCAResult(_cca_parts(X, Y, ridge).rho)


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
        The SVCCA similarity is ``result.mean_rho``.
    """
    X, Y = as_pair(X, Y, spatial)
    return CCAResult(_cca_parts(X, Y, ridge, keep).rho)


def pwcca(X: Any, Y: Any, ridge: float = 0.0, spatial: str | None = None) -> float:
    """Projection-weighted CCA (Morcos et al. 2018), weighted by the neurons of ``X``.

    With ``h_i`` the i-th canonical variate of X (the n-vector ``Xc a_i``, scaled to unit norm)
    and ``z_j`` the j-th centred neuron (column) of X::

        alpha_i = sum_j |<h_i, z_j>|,        PWCCA = sum_i alpha_i rho_i / sum_i alpha_i

    Not symmetric: the weights come from X, the first argument. Other libraries differ (one
    weights by whichever input has fewer neurons and projects *uncentred* activations), so their
    numbers are not comparable with this definition.
    """
    X, Y = as_pair(X, Y, spatial)
    p = _cca_parts(X, Y, ridge)
    G = p.f[:, None] * p.P  # (rx, k): variate i is U_x G[:, i], up to its norm
    G = G / G.norm(dim=0, keepdim=True)
    # <h_i, z_j> = (U_x G)^T U_x S_x V_x^T = G^T S_x V_x^T  -> (k, dx)
    alpha = (G.T @ (p.s[:, None] * p.V.T)).abs().sum(dim=1)
    return float((alpha * p.rho).sum() / alpha.sum())
