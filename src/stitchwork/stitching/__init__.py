"""Model stitching: frozen front of A, trainable stitch layer, frozen back of B.

``stitch(model_a, cut_a, model_b, cut_b, data, stitch="affine", matching="direct")`` is the
one-call entry point; the pieces (stitch layers, :class:`StitchedModel`, the direct fitters,
the Lightning :class:`StitchingModule`, the metrics) are importable on their own.
"""

from .api import BUILTIN_MATCHINGS, BUILTIN_STITCHES, resolve_matching, resolve_stitch, stitch
from .base import CrossMoments, StitchLayer, StitchShapeError, StitchWeights
from .constrained import OrthogonalStitch, PermutationStitch
from .direct import (
    MomentAccumulator,
    diagonal_fit,
    least_squares_fit,
    moments_of,
    permutation_fit,
    procrustes_fit,
    reduced_rank_fit,
)
from .layers import (
    AffineStitch,
    BNAffineStitch,
    DiagonalStitch,
    FlattenLinearStitch,
    IdentityStitch,
    LowRankStitch,
)
from .matching import MatchContext, MatchingMethod
from .metrics import stitch_metrics
from .stitched import StitchedModel, build_stitched
from .task_loss import StitchingModule, stitching_recipe

__all__ = [
    "AffineStitch", "BNAffineStitch", "BUILTIN_MATCHINGS", "BUILTIN_STITCHES", "CrossMoments",
    "DiagonalStitch", "FlattenLinearStitch", "IdentityStitch", "LowRankStitch", "MatchContext",
    "MatchingMethod", "MomentAccumulator", "OrthogonalStitch", "PermutationStitch",
    "StitchLayer", "StitchShapeError", "StitchWeights", "StitchedModel", "StitchingModule",
    "build_stitched", "diagonal_fit", "least_squares_fit", "moments_of", "permutation_fit",
    "procrustes_fit", "reduced_rank_fit", "resolve_matching", "resolve_stitch",
    "stitch", "stitch_metrics", "stitching_recipe",
]  # fmt: skip
