"""Apply a permutation to a state dict or model; random, identity and inverse permutations."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..utils.atomic import atomic_torch_save
from .spec import Permutation, PermutationSpec, SpecError, expand_index

StateDict = dict[str, torch.Tensor]


def check_permutation(spec: PermutationSpec, perm: Mapping[str, torch.Tensor]) -> None:
    """Raise unless ``perm`` holds a valid permutation of the right size for every spec perm."""
    missing = set(spec.perm_sizes) - set(perm)
    if missing:
        raise SpecError(f"permutation lacks {sorted(missing)}; the spec has {spec.perms}")
    for name, n in spec.perm_sizes.items():
        p = perm[name]
        if p.shape != (n,) or not torch.equal(torch.sort(p.cpu()).values, torch.arange(n)):
            raise SpecError(f"perm[{name!r}] is not a permutation of range({n})")


def permute_tensor(
    spec: PermutationSpec, perm: Mapping[str, torch.Tensor], key: str, w: torch.Tensor,
    except_axis: int | None = None,
) -> torch.Tensor:
    """``w`` (the entry ``key``) with every permuted axis re-indexed, but ``except_axis``
    (a blocked axis by the block expansion of its permutation)."""
    for axis, name in enumerate(spec.axes_to_perm[key]):
        if name is not None and axis != except_axis:
            w = w.index_select(axis, expand_index(perm[name].to(w.device), spec.block(key, axis)))
    return w


def apply_permutation(
    spec: PermutationSpec, perm: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> StateDict:
    """A new state dict: every entry of ``state`` permuted as ``spec`` says (buffers too)."""
    check_permutation(spec, perm)
    return {k: permute_tensor(spec, perm, k, v) for k, v in state.items()}


def permute_model(model: nn.Module, spec: PermutationSpec, perm: Mapping[str, torch.Tensor]) -> nn.Module:
    """A deep copy of ``model`` with permuted weights; it computes the same function."""
    out = copy.deepcopy(model)
    out.load_state_dict(apply_permutation(spec, perm, model.state_dict()))
    return out


def identity_permutation(spec: PermutationSpec) -> Permutation:
    """The identity for every permutation of ``spec`` (the ``naive`` alignment)."""
    return {p: torch.arange(n) for p, n in spec.perm_sizes.items()}


def random_permutation(spec: PermutationSpec, seed: int = 0) -> Permutation:
    """Independent uniformly random permutations, reproducible by ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    return {p: torch.randperm(n, generator=gen) for p, n in spec.perm_sizes.items()}


def invert_permutation(perm: Mapping[str, torch.Tensor]) -> Permutation:
    """``inv`` with ``apply(inv, apply(perm, state)) == state``."""
    return {p: torch.argsort(v) for p, v in perm.items()}


def compose_permutations(
    first: Mapping[str, torch.Tensor], then: Mapping[str, torch.Tensor]
) -> Permutation:
    """The permutation equal to applying ``first`` and then ``then``."""
    return {p: first[p][then[p].to(first[p].device)] for p in first}


def save_permutation(perm: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write ``perm`` atomically as a torch file of index tensors; returns the path."""
    return atomic_torch_save(path, {p: v.detach().cpu().long() for p, v in perm.items()})


def load_permutation(path: str | Path, spec: PermutationSpec | None = None) -> Permutation:
    """Read a permutation written by :func:`save_permutation` (checked against ``spec``)."""
    perm = torch.load(Path(path), map_location="cpu", weights_only=True)
    if spec is not None:
        check_permutation(spec, perm)
    return perm
