"""Similarity measures by name, for apps and sweeps that pick one from a config string.

Every entry maps ``(X, Y, **kwargs) -> float`` on ``(n, d)`` inputs (``spatial=`` is passed
through for conv maps). ``"procrustes"`` and ``"procrustes_angular"`` are distances (0 means
identical); every other entry is a similarity where higher means more alike.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ._checks import SimilarityInputError
from .cca import cca, pwcca, svcca
from .cka import linear_cka, rbf_cka
from .procrustes import procrustes
from .rsa import rsa

Measure = Callable[..., float]


def _cca_mean_rho(X: Any, Y: Any, **kw: Any) -> float:
    return cca(X, Y, **kw).mean_rho


def _cca_mean_rho_sq(X: Any, Y: Any, **kw: Any) -> float:
    return cca(X, Y, **kw).mean_rho_sq


def _svcca_mean_rho(X: Any, Y: Any, **kw: Any) -> float:
    return svcca(X, Y, **kw).mean_rho


MEASURES: dict[str, Measure] = {
    "linear_cka": partial(linear_cka, debiased=False),
    "linear_cka_debiased": partial(linear_cka, debiased=True),
    "rbf_cka": partial(rbf_cka, debiased=False),
    "rbf_cka_debiased": partial(rbf_cka, debiased=True),
    "cca_mean_rho": _cca_mean_rho,
    "cca_mean_rho_sq": _cca_mean_rho_sq,
    "svcca": _svcca_mean_rho,
    "pwcca": pwcca,
    "procrustes": partial(procrustes, angular=False),
    "procrustes_angular": partial(procrustes, angular=True),
    "rsa_pearson": partial(rsa, method="pearson"),
    "rsa_spearman": partial(rsa, method="spearman"),
}

DISTANCES = frozenset({"procrustes", "procrustes_angular"})


def get_measure(name: str) -> Measure:
    """Return the measure registered as ``name``; the error lists the valid names."""
    try:
        return MEASURES[name]
    except KeyError:
        raise SimilarityInputError(
            f"unknown similarity measure {name!r}; valid names: {', '.join(sorted(MEASURES))}"
        ) from None
