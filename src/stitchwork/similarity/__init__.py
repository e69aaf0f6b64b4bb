"""Similarity indices between representations: CKA, CCA family, Procrustes, RSA.

Pure functions on paired ``(n, d)`` activations (torch tensors on any device, or numpy arrays),
reduced in float64 with features centred before any product; conv maps ``(n, c, h, w)`` need
an explicit ``spatial`` policy. Accumulators stream over batches. Each measure is a
:class:`Measure` object that says whether it is symmetric and a distance; registered measures
are looked up by name with :func:`get_measure`.
"""

from ._checks import SPATIAL_POLICIES, SimilarityInputError, spatial_features
from .all_pairs import all_pairs
from .cca import CCAResult, DegenerateCCAWarning, cca, pwcca, svcca
from .cka import choose_linear_form, linear_cka, rbf_cka
from .measures import DISTANCES, MEASURES, Measure, get_measure
from .procrustes import procrustes
from .rsa import rsa
from .streaming import LinearCKAAccumulator, MinibatchCKAAccumulator, SimilarityAccumulator

__all__ = [
    "CCAResult",
    "DISTANCES",
    "DegenerateCCAWarning",
    "LinearCKAAccumulator",
    "MEASURES",
    "Measure",
    "MinibatchCKAAccumulator",
    "SPATIAL_POLICIES",
    "SimilarityAccumulator",
    "SimilarityInputError",
    "all_pairs",
    "cca",
    "choose_linear_form",
    "get_measure",
    "linear_cka",
    "pwcca",
    "procrustes",
    "rbf_cka",
    "rsa",
    "spatial_features",
    "svcca",
]
