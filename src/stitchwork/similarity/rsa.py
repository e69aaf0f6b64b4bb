"""Representational similarity analysis (Kriegeskorte et al. 2008).

Each input gives a representational dissimilarity matrix (RDM) over its n samples; the RSA
score is the Pearson or Spearman correlation of the two RDMs' upper triangles (``i < j``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._checks import SimilarityInputError, as_pair

RSA_METHODS = ("pearson", "spearman")
RDM_KINDS = ("correlation", "euclidean")


def rdm(X: torch.Tensor, kind: str = "correlation") -> torch.Tensor:
    """Dissimilarity of every pair of samples, float64; ``(n, d) -> (n, n)``.

    ``"correlation"``: ``1 - Pearson(x_i, x_j)`` across features (each sample pattern is
    centred and normalised, the usual RSA choice); ``"euclidean"``: ``||x_i - x_j||``.
    """
    if kind not in RDM_KINDS:
        raise SimilarityInputError(f"unknown rdm {kind!r}; valid: {', '.join(RDM_KINDS)}")
    X = X.to(torch.float64)
    if kind == "euclidean":
        # direct differences (no |x|^2 + |y|^2 - 2 x.y expansion): exact ties stay exact ties
        return torch.cdist(X, X, compute_mode="donot_use_mm_for_euclid_dist")
    P = X - X.mean(dim=1, keepdim=True)  # centre each sample's pattern
    norms = P.norm(dim=1, keepdim=True)
    if not bool((norms > 0).all()):
        raise SimilarityInputError(
            f"{int((norms == 0).sum())} samples have constant patterns; their correlation "
            "distance is undefined (use rdm='euclidean')"
        )
    P = P / norms
    return 1.0 - P @ P.T


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..m with ties given their average rank (as scipy.stats.rankdata)."""
    order = torch.argsort(v, stable=True)
    sv = v[order]
    _, inverse, counts = torch.unique_consecutive(sv, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)  # last 1-based rank of each tie group
    avg = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(v, dtype=torch.float64)
    ranks[order] = avg[inverse]
    return ranks


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    if not denom > 0:
        raise SimilarityInputError("an RDM is constant, so its correlation is undefined")
    return float((a @ b) / denom)


def rsa(
    X: Any,
    Y: Any,
    method: str = "pearson",
    rdm_kind: str = "correlation",
    spatial: str | None = None,
) -> float:
    """Correlation between the RDMs of ``X`` and ``Y`` (1 for identical data).

    Parameters
    ----------
    method
        ``"pearson"`` or ``"spearman"`` (ranks with ties averaged) over the ``n(n-1)/2``
        off-diagonal pairs.
    rdm_kind
        How each RDM is built, see :func:`rdm`.
    spatial
        Policy for conv maps: ``"flatten"``, ``"samples"`` or ``"avgpool"``.
    """
    if method not in RSA_METHODS:
        raise SimilarityInputError(f"unknown method {method!r}; valid: {', '.join(RSA_METHODS)}")
    X, Y = as_pair(X, Y, spatial, min_samples=3)
    i, j = torch.triu_indices(X.shape[0], X.shape[0], offset=1, device=X.device)
    a, b = rdm(X, rdm_kind)[i, j], rdm(Y, rdm_kind)[i, j]
    if method == "spearman":
        a, b = _ranks(a), _ranks(b)
    return _pearson(a, b)
