"""Orthogonal Procrustes distance between representations (Ding et al. 2021).

Both inputs are centred and scaled to unit Frobenius norm, then

    d_Proc(X, Y) = min_Q ||X - Y Q||_F^2 = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_*
                 = 2 - 2 ||X^T Y||_*

over matrices Q with orthonormal columns (the narrower input is zero-padded), where ``||.||_*``
is the nuclear norm. The angular form ``arccos ||X^T Y||_*`` (Williams et al. 2021) is a metric
in radians on [0, pi/2]. Unlike CCA, neither is invariant to non-orthogonal linear maps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._checks import SimilarityInputError, as_pair, centred64


def _nuclear_cross(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``||X^T Y||_*`` for centred float64 inputs, through whichever side is smaller."""
    n, dx = X.shape
    dy = Y.shape[1]
    if dx * dy <= n * n:
        return torch.linalg.svdvals(X.T @ Y).sum()  # (dx, dy)
    # X^T Y = V_x S_x U_x^T U_y S_y V_y^T has the singular values of S_x U_x^T U_y S_y
    Ux, sx, _ = torch.linalg.svd(X, full_matrices=False)
    Uy, sy, _ = torch.linalg.svd(Y, full_matrices=False)
    return torch.linalg.svdvals(sx[:, None] * (Ux.T @ Uy) * sy[None, :]).sum()


def procrustes(X: Any, Y: Any, angular: bool = False, spatial: str | None = None) -> float:
    """Orthogonal Procrustes distance (0 for identical shapes; a distance, not a similarity).

    Parameters
    ----------
    X, Y
        Activations (torch or numpy), rows paired; centred and scaled to unit Frobenius norm in
        float64 before comparison, so translation and isotropic scale are ignored.
    angular
        Return ``arccos ||X^T Y||_*`` in radians instead of Ding et al.'s squared distance
        ``2 - 2 ||X^T Y||_*`` (which lies in [0, 2]).
    spatial
        Policy for conv maps: ``"flatten"``, ``"samples"`` or ``"avgpool"``.
    """
    X, Y = as_pair(X, Y, spatial)
    Xc, Yc = centred64(X), centred64(Y)
    for name, M in (("X", Xc), ("Y", Yc)):
        if not M.norm() > 0:
            raise SimilarityInputError(f"{name} has zero variance after centring; cannot normalise")
    nuc = float(_nuclear_cross(Xc / Xc.norm(), Yc / Yc.norm()))
    nuc = min(max(nuc, 0.0), 1.0)  # rounding can step just outside [0, 1]
    return math.acos(nuc) if angular else 2.0 - 2.0 * nuc
