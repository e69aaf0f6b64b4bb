"""Centred kernel alignment: linear and RBF, biased and debiased (Kornblith et al. 2019).

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for kernel (Gram) matrices K, L of the
same n samples. Two HSIC estimators are offered:

- biased (Gretton et al. 2005): ``<HKH, HLH>_F / (n-1)^2`` with ``H = I - 11^T/n``;
- debiased (``debiased=True``): the unbiased U-statistic of Song et al. 2012, with
  ``K~ = K`` with zero diagonal::

      HSIC_u = [tr(K~L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

  needs n >= 4 and can be negative; "debiased CKA" plugs it into the ratio above.

Numerics: every input is cast to float64 and its features are centred *before* any product
(uncentred float32 Gram matrices of post-ReLU features cancel catastrophically); HSIC is
translation invariant, so centring changes nothing mathematically. ``<K, L>`` is an element-wise
sum, never ``trace(K @ L)``.
"""

from __future__ import annotations

from typing import Any

import torch

from ._checks import SimilarityInputError, as_pair, check_nonneg_self

FORMS = ("auto", "gram", "feature")
_CHUNK_BYTES = 2**27  # float64 working set of one chunk (128 MiB): bounds the cast copies
_F64 = torch.float64


def choose_linear_form(n: int, dx: int, dy: int) -> str:
    """Pick the cheaper exact form of linear CKA by its matmul flop count.

    Gram form: ``2 n^2 (dx + dy)`` flops and two ``n x n`` matrices; feature form:
    ``2 n (dx dy + dx^2 + dy^2)`` flops and three ``d x d`` matrices. For ``dx = dy = d`` the
    feature form wins when ``d <= 2n/3``.
    """
    gram = 2 * n * n * (dx + dy)
    feature = 2 * n * (dx * dy + dx * dx + dy * dy)
    return "feature" if feature <= gram else "gram"


def sq_norm(M: torch.Tensor) -> torch.Tensor:
    """``||M||_F^2`` as a dot product of the flattened view (no ``M.square()`` temporary)."""
    v = M.reshape(-1)
    return v @ v


def _column_mean(X: torch.Tensor) -> torch.Tensor:
    """float64 column means of ``X`` without a full float64 copy; ``(n, d) -> (d,)``."""
    rows = max(1, _CHUNK_BYTES // (8 * X.shape[1]))
    total = torch.zeros(X.shape[1], dtype=_F64, device=X.device)
    for i in range(0, X.shape[0], rows):
        total += X[i : i + rows].to(_F64).sum(dim=0)
    return total / X.shape[0]


def centred_gram(X: torch.Tensor) -> torch.Tensor:
    """Linear Gram matrix ``Xc Xc^T`` of the column-centred features, in float64; ``(n, n)``.

    Features are cast and centred in chunks of columns, so the peak extra memory is the
    ``n x n`` result plus one chunk.
    """
    n, d = X.shape
    mean = _column_mean(X)
    cols = max(1, _CHUNK_BYTES // (8 * n))
    K = torch.zeros(n, n, dtype=_F64, device=X.device)
    for j in range(0, d, cols):
        C = X[:, j : j + cols].to(_F64) - mean[j : j + cols]  # (n, cols) centred
        K.addmm_(C, C.T)
    return K


def _feature_stats(X: torch.Tensor, Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """<K,L>, <K,K>, <L,L> and diag(K), diag(L) via ``d x d`` cross-products of centred features."""
    n, dx = X.shape
    dy = Y.shape[1]
    mx, my = _column_mean(X), _column_mean(Y)
    rows = max(1, _CHUNK_BYTES // (8 * (dx + dy)))
    sxy = torch.zeros(dx, dy, dtype=_F64, device=X.device)
    sxx = torch.zeros(dx, dx, dtype=_F64, device=X.device)
    syy = torch.zeros(dy, dy, dtype=_F64, device=X.device)
    dk, dl = [], []
    for i in range(0, n, rows):
        A = X[i : i + rows].to(_F64) - mx  # (rows, dx) centred
        B = Y[i : i + rows].to(_F64) - my  # (rows, dy) centred
        sxy.addmm_(A.T, B)
        sxx.addmm_(A.T, A)
        syy.addmm_(B.T, B)
        dk.append(A.square().sum(dim=1))
        dl.append(B.square().sum(dim=1))
    # ||Xc^T Yc||_F^2 = <Xc Xc^T, Yc Yc^T>_F: same numbers as the Gram form
    return {
        "kl": sq_norm(sxy),
        "kk": sq_norm(sxx),
        "ll": sq_norm(syy),
        "dk": torch.cat(dk),
        "dl": torch.cat(dl),
    }


def _gram_stats(X: torch.Tensor, Y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same statistics as :func:`_feature_stats` from the two ``n x n`` Gram matrices."""
    K = centred_gram(X)
    L = centred_gram(Y)
    k, l_ = K.reshape(-1), L.reshape(-1)  # views: dot products without n^2 temporaries
    return {
        "kl": k @ l_,
        "kk": k @ k,
        "ll": l_ @ l_,
        "dk": K.diagonal().clone(),
        "dl": L.diagonal().clone(),
    }


def linear_stats(X: torch.Tensor, Y: torch.Tensor, form: str = "auto") -> dict[str, torch.Tensor]:
    """HSIC ingredients of two validated ``(n, d)`` inputs with linear kernels.

    Returns float64 scalars ``kl = <K, L>``, ``kk``, ``ll`` and the diagonals ``dk``, ``dl``
    of the centred Gram matrices (their row sums are zero because features are centred).
    """
    if form not in FORMS:
        raise SimilarityInputError(f"unknown form {form!r}; valid forms: {', '.join(FORMS)}")
    if form == "auto":
        form = choose_linear_form(X.shape[0], X.shape[1], Y.shape[1])
    return _feature_stats(X, Y) if form == "feature" else _gram_stats(X, Y)


def unbiased_hsic(
    n: int,
    kl: torch.Tensor,
    dk: torch.Tensor,
    dl: torch.Tensor,
    rk: torch.Tensor | None = None,
    rl: torch.Tensor | None = None,
) -> torch.Tensor:
    """Song et al. (2012) unbiased HSIC from ``<K, L>``, the diagonals and the row sums.

    ``rk = K 1`` and ``rl = L 1`` default to zero (kernels of centred linear features).
    """
    ak = -dk if rk is None else rk - dk  # K~ 1
    al = -dl if rl is None else rl - dl  # L~ 1
    return unbiased_hsic_from_sums(n, kl, dk @ dl, ak.sum(), al.sum(), ak @ al)


def unbiased_hsic_from_sums(
    n: int,
    kl: torch.Tensor,
    dkdl: torch.Tensor,
    sum_ak: torch.Tensor,
    sum_al: torch.Tensor,
    ak_al: torch.Tensor,
) -> torch.Tensor:
    """Unbiased HSIC from scalars: ``<K, L>``, ``diag(K) . diag(L)``, ``1^T K~ 1``,
    ``1^T L~ 1`` and ``(K~ 1) . (L~ 1)`` (``K~``: K with zero diagonal)."""
    trace = kl - dkdl  # tr(K~ L~)
    return (trace + sum_ak * sum_al / ((n - 1) * (n - 2)) - 2.0 * ak_al / (n - 2)) / (n * (n - 3))


def cka_ratio(kl: torch.Tensor, kk: torch.Tensor, ll: torch.Tensor) -> float:
    """``kl / sqrt(kk * ll)`` with the self-HSIC guard; any common normalisation cancels."""
    check_nonneg_self(float(kk), "HSIC(X, X)")
    check_nonneg_self(float(ll), "HSIC(Y, Y)")
    return float(kl / torch.sqrt(kk * ll))


def _cka_from_linear_stats(s: dict[str, torch.Tensor], n: int, debiased: bool) -> float:
    if not debiased:
        return cka_ratio(s["kl"], s["kk"], s["ll"])
    dk, dl = s["dk"], s["dl"]
    return cka_ratio(
        unbiased_hsic(n, s["kl"], dk, dl),
        unbiased_hsic(n, s["kk"], dk, dk),
        unbiased_hsic(n, s["ll"], dl, dl),
    )


def linear_cka(
    X: Any, Y: Any, debiased: bool = False, form: str = "auto", spatial: str | None = None
) -> float:
    """Linear CKA between ``(n, dx)`` and ``(n, dy)`` representations of the same n samples.

    Parameters
    ----------
    X, Y
        Activations as torch tensors or numpy arrays, rows paired; any device, any float dtype
        (reduced in float64). Conv maps ``(n, c, h, w)`` need ``spatial``.
    debiased
        Use the unbiased HSIC estimator (Song et al. 2012), i.e. Kornblith et al.'s debiased
        CKA; needs n >= 4. The biased estimator is inflated for small n / large d
        (independent Gaussians with n = 50, d = 80 give about 0.6).
    form
        ``"gram"`` (``n x n`` kernels), ``"feature"`` (``d x d`` cross-products,
        ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``) or ``"auto"`` (cheaper by
        :func:`choose_linear_form`). Both give the same value up to rounding.
    spatial
        Policy for conv maps: ``"flatten"``, ``"samples"`` or ``"avgpool"``.

    Returns
    -------
    float
        CKA in [0, 1] (biased); the debiased value can be slightly negative.
    """
    X, Y = as_pair(X, Y, spatial, min_samples=4 if debiased else 2)
    return _cka_from_linear_stats(linear_stats(X, Y, form), X.shape[0], debiased)


def rbf_gram(X: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """Gaussian kernel ``exp(-||x_i - x_j||^2 / (2 sigma^2))`` in float64; ``(n, d) -> (n, n)``.

    ``sigma^2 = threshold^2 * median`` of the squared-distance matrix taken over all ``n^2``
    entries, zero diagonal included, as in Kornblith et al. (2019)'s reference code.
    """
    if not threshold > 0:
        raise SimilarityInputError(f"threshold must be > 0, got {threshold!r}")
    G = centred_gram(X)  # distances are translation invariant; centring keeps them exact
    sq = G.diagonal()
    D2 = (sq[:, None] + sq[None, :] - 2.0 * G).clamp_(min=0.0)
    D2.fill_diagonal_(0.0)
    flat = D2.reshape(-1)
    m = flat.numel()
    lo = torch.kthvalue(flat, (m + 1) // 2).values
    median = lo if m % 2 else (lo + torch.kthvalue(flat, m // 2 + 1).values) / 2
    if not median > 0:
        raise SimilarityInputError(
            "median squared distance is 0 (most samples of the input coincide); RBF bandwidth undefined"
        )
    return torch.exp(D2 / (-2.0 * threshold**2 * median))


def _double_centre(K: torch.Tensor) -> torch.Tensor:
    """``H K H`` for ``H = I - 11^T / n``."""
    row = K.mean(dim=1, keepdim=True)
    return K - row - row.T + K.mean()


def rbf_cka(
    X: Any,
    Y: Any,
    threshold: float = 1.0,
    debiased: bool = False,
    spatial: str | None = None,
) -> float:
    """CKA with Gaussian (RBF) kernels, bandwidth set by the median heuristic.

    ``sigma^2 = threshold^2 * median(D^2)`` with ``D^2`` the squared Euclidean distances of each
    input's own samples (median over all n^2 entries including the zero diagonal; Kornblith et
    al. 2019's convention). The index is invariant to orthogonal maps, translation and isotropic
    scaling. ``debiased`` and ``spatial`` as in :func:`linear_cka`; costs ``O(n^2)`` memory.
    """
    X, Y = as_pair(X, Y, spatial, min_samples=4 if debiased else 2)
    n = X.shape[0]
    K, L = rbf_gram(X, threshold), rbf_gram(Y, threshold)
    if debiased:
        dk, dl, rk, rl = K.diagonal(), L.diagonal(), K.sum(dim=1), L.sum(dim=1)
        k, l_ = K.reshape(-1), L.reshape(-1)
        return cka_ratio(
            unbiased_hsic(n, k @ l_, dk, dl, rk, rl),
            unbiased_hsic(n, k @ k, dk, dk, rk, rk),
            unbiased_hsic(n, l_ @ l_, dl, dl, rl, rl),
        )
    k, l_ = _double_centre(K).reshape(-1), _double_centre(L).reshape(-1)
    return cka_ratio(k @ l_, k @ k, l_ @ l_)
