"""Re-basin: permutation specs, weight/activation matching, interpolation, BN reset, REPAIR,
and mode-combinability (element-wise convex combinations of aligned models).

The front door is :func:`align` and :func:`merge` (``rebasin/api.py``); the rest of the
room is imported from its modules.
"""

from .activation_matching import ActivationMatcher
from .api import Alignment, align, merge, post_process
from .builders import spec_for
from .interpolate import curve_barriers, interpolation_curve
from .interpolate import interpolate_models as interpolate
from .matching import Matcher
from .post import BNReset, NoPost, PostProcessor, Repair
from .spec import Permutation, PermutationSpec, SpecError
from .weight_matching import WeightMatcher

__all__ = [
    "ActivationMatcher", "Alignment", "BNReset", "Matcher", "NoPost", "Permutation",
    "PermutationSpec", "PostProcessor", "Repair", "SpecError", "WeightMatcher", "align",
    "curve_barriers", "interpolate", "interpolation_curve", "merge", "post_process", "spec_for",
]  # fmt: skip
