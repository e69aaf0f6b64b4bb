"""Permutation specs for re-basin: the data type and axis helpers of :mod:`stitchwork.axes`.

They live below ``models/`` so that a model can describe its own spec; re-exported here
because they are the vocabulary of every re-basin module.
"""

from ..axes import (
    Axes,
    Permutation,
    PermutationSpec,
    SpecError,
    build_spec,
    conv,
    dense,
    expand_index,
    norm,
    norm_kind,
)

__all__ = [
    "Axes", "Permutation", "PermutationSpec", "SpecError", "build_spec", "conv", "dense", "expand_index", "norm",
    "norm_kind",
]
