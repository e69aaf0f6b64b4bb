"""Permutation specs: which permutation acts on which axis of which state_dict entry.

A *permutation* relabels the hidden units (channels) of one layer group; the network
computes the same function when every tensor that reads or writes those units is
re-indexed consistently. A :class:`PermutationSpec` is that bookkeeping as data: for
every ``state_dict`` key, one permutation name (or ``None``) per tensor axis, and the
inverse map from each permutation to the ``(key, axis)`` pairs it touches. Specs are
built by one short function per architecture from the axis helpers below and validated
against the model's ``state_dict`` when built.

This module sits below both ``models/`` and ``rebasin/``: a model describes its own spec
with a ``permutation_spec()`` method built from these helpers (beside its architecture),
and :func:`stitchwork.rebasin.spec_for` uses it, inferring one by torch.fx otherwise.

Convention used throughout :mod:`stitchwork.rebasin`: a permutation ``perm[p]`` is a
``LongTensor`` of size ``n_p``; the permuted tensor is ``w.index_select(axis, perm[p])``,
i.e. new unit ``i`` is old unit ``perm[p][i]``.

A *blocked* axis holds each unit of ``p`` as a run of ``block`` consecutive entries: the
input axis of a Linear layer that reads a flattened ``(C, H, W)`` map (channel-major, index
``c·H·W + s``) is ``p`` on ``C`` channels with ``block = H·W``. It is permuted by the block
expansion of ``perm[p]`` (:func:`expand_index`), and ``n_p · block`` is the axis size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import nn

#: ``perm name -> index tensor``; see the module docstring for the convention.
Permutation = dict[str, torch.Tensor]
#: ``state_dict key -> one permutation name (or None) per axis``.
Axes = dict[str, tuple[str | None, ...]]


class SpecError(ValueError):
    """A spec that does not fit a model's state_dict, or a model with no spec."""


@dataclass(frozen=True)
class PermutationSpec:
    """Axes of every state_dict entry and the inverse map, validated on construction.

    Attributes
    ----------
    axes_to_perm
        ``key -> (perm or None per axis)`` for *every* state_dict key.
    perm_to_axes
        ``perm -> ((key, axis), ...)``, derived from ``axes_to_perm``.
    perm_sizes
        ``perm -> number of units``.
    buffers
        Keys that are permuted but not part of any matching objective (BatchNorm
        running statistics and counters).
    activations
        ``perm -> module names`` whose outputs carry the permuted units on axis 1
        (used by activation matching; may be empty for a spec used by weight
        matching only).
    blocks
        ``(key, axis) -> block`` for the blocked axes (see the module docstring); an
        axis not listed has block 1.
    """

    axes_to_perm: Mapping[str, tuple[str | None, ...]]
    perm_to_axes: Mapping[str, tuple[tuple[str, int], ...]] = field(repr=False)
    perm_sizes: Mapping[str, int]
    buffers: frozenset[str] = frozenset()
    activations: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    blocks: Mapping[tuple[str, int], int] = field(default_factory=dict)

    def block(self, key: str, axis: int) -> int:
        """How many consecutive entries of axis ``axis`` of ``key`` each unit occupies."""
        return self.blocks.get((key, axis), 1)

    @property
    def perms(self) -> list[str]:
        """Permutation names in order of first appearance."""
        return list(self.perm_to_axes)

    def partition(self) -> frozenset[frozenset[tuple[str, int]]]:
        """The spec's structure without names: the set of ``(key, axis)`` groups.

        Two specs are equivalent (act identically for some renaming of permutations)
        exactly when their partitions are equal.
        """
        return frozenset(frozenset(axes) for axes in self.perm_to_axes.values())

    def equivalent(self, other: PermutationSpec) -> bool:
        """Same keys, axis groups, blocks and sizes, whatever the permutation names."""
        return (
            set(self.axes_to_perm) == set(other.axes_to_perm)
            and self.partition() == other.partition()
            and dict(self.blocks) == dict(other.blocks)
            and sorted(self.perm_sizes.values()) == sorted(other.perm_sizes.values())
        )


def expand_index(index: torch.Tensor, block: int) -> torch.Tensor:
    """The permutation of ``len(index) · block`` entries that moves whole blocks:
    entry ``index[i]·block + s`` goes to ``i·block + s`` (``index`` itself for block 1)."""
    if block == 1:
        return index
    offsets = torch.arange(block, device=index.device)
    return (index[:, None] * block + offsets).reshape(-1)


def build_spec(
    axes: Axes, model: nn.Module, activations: Mapping[str, tuple[str, ...]] | None = None,
    blocks: Mapping[tuple[str, int], int] | None = None,
) -> PermutationSpec:
    """Validate ``axes`` against ``model.state_dict()`` and derive the inverse map.

    Every state_dict key must be listed, with one entry per tensor axis, and every
    permutation must see the same size on every axis it touches (a blocked axis, listed
    in ``blocks`` as ``(key, axis) -> block``, is ``block`` times that size).
    """
    state, blocks = model.state_dict(), dict(blocks or {})
    missing, extra = set(state) - set(axes), set(axes) - set(state)
    if missing or extra:
        raise SpecError(
            f"spec does not match {type(model).__name__}'s state_dict: keys without axes "
            f"{sorted(missing)}, axes for unknown keys {sorted(extra)}"
        )
    perm_to_axes: dict[str, list[tuple[str, int]]] = {}
    sizes: dict[str, int] = {}
    for key, tensor in state.items():
        if len(axes[key]) != tensor.dim():
            raise SpecError(
                f"spec gives {len(axes[key])} axes for {key!r} but the tensor has shape "
                f"{tuple(tensor.shape)}"
            )
        for axis, perm in enumerate(axes[key]):
            if perm is None:
                continue
            block, size = blocks.get((key, axis), 1), tensor.shape[axis]
            if size % block:
                raise SpecError(f"axis {axis} of {key!r} has size {size}, not a multiple of its block {block}")
            if sizes.setdefault(perm, size // block) != size // block:
                raise SpecError(
                    f"permutation {perm!r} has size {sizes[perm]} elsewhere but axis {axis} "
                    f"of {key!r} has size {size}" + (f" in blocks of {block}" if block > 1 else "")
                )
            perm_to_axes.setdefault(perm, []).append((key, axis))
    loose = [(k, a) for (k, a) in blocks if k not in axes or a >= len(axes[k]) or axes[k][a] is None]
    if loose:
        raise SpecError(f"blocks given for axes that no permutation acts on: {sorted(loose)}")
    params = {name for name, _ in model.named_parameters()}
    acts = dict(activations or {})
    unknown = set(acts) - set(perm_to_axes)
    if unknown:
        raise SpecError(f"activation points for unknown permutations {sorted(unknown)}")
    return PermutationSpec(
        axes_to_perm=MappingProxyType({k: tuple(axes[k]) for k in state}),
        perm_to_axes=MappingProxyType({p: tuple(v) for p, v in perm_to_axes.items()}),
        perm_sizes=MappingProxyType(sizes),
        buffers=frozenset(set(state) - params),
        activations=MappingProxyType(acts),
        blocks=MappingProxyType({k: b for k, b in blocks.items() if b != 1}),
    )


# --- axis helpers: one line per layer kind ---------------------------------------------


def dense(name: str, p_out: str | None, p_in: str | None, bias: bool = True) -> Axes:
    """A Linear layer: weight ``(out, in)``, bias ``(out,)``."""
    axes: Axes = {f"{name}.weight": (p_out, p_in)}
    if bias:
        axes[f"{name}.bias"] = (p_out,)
    return axes


def conv(name: str, p_out: str | None, p_in: str | None, bias: bool = False) -> Axes:
    """A 2-d convolution: weight ``(out, in, kh, kw)``, optional bias ``(out,)``."""
    axes: Axes = {f"{name}.weight": (p_out, p_in, None, None)}
    if bias:
        axes[f"{name}.bias"] = (p_out,)
    return axes


def norm(name: str, p: str | None, kind: str) -> Axes:
    """A norm layer of ``kind`` ``bn`` (with running stats), ``ln`` (GroupNorm(1, C)) or ``none``."""
    if kind == "none":
        return {}
    axes: Axes = {f"{name}.weight": (p,), f"{name}.bias": (p,)}
    if kind == "bn":
        axes |= {
            f"{name}.running_mean": (p,),
            f"{name}.running_var": (p,),
            f"{name}.num_batches_tracked": (),
        }
    return axes


def norm_kind(module: nn.Module) -> str:
    """``bn``, ``ln`` or ``none`` for a norm module as built by ``models/norm.py``."""
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    if isinstance(module, nn.GroupNorm):
        if module.num_groups != 1:
            raise SpecError(f"GroupNorm with {module.num_groups} groups is not a LayerNorm")
        return "ln"
    if isinstance(module, nn.Identity):
        return "none"
    raise SpecError(f"unknown norm module {type(module).__name__}")
