"""Run the frozen front once and train the stitch on the cached activations.

Without augmentation the front of A sees the same images every epoch and, being frozen and
in eval mode, gives the same activations; computing them once turns each training step into
``back_B(stitch(a))``. With augmentation, or when the cache would not fit the memory budget,
training streams the images instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..utils.modules import eval_mode, model_device

#: Default cap on the size of a cache of activations (bytes).
DEFAULT_CACHE_BYTES = 2 * 1024**3


def cache_bytes(n_examples: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    """Memory that ``n_examples`` cached activations of ``shape`` take."""
    return n_examples * math.prod(shape) * torch.empty((), dtype=dtype).element_size()


def should_cache(
    cache: bool | None, augment: bool, n_examples: int, shape: tuple[int, ...],
    max_bytes: int = DEFAULT_CACHE_BYTES,
) -> bool:
    """Decide whether to cache: ``cache`` if given, else when not augmenting and it fits.

    Raises ``ValueError`` when caching is forced on augmented data (the cache would freeze
    one draw of the augmentation).
    """
    if cache and augment:
        raise ValueError("cache=true with augmented training data would freeze one augmentation; "
                         "set cache=null (auto) or false, or turn augmentation off")  # fmt: skip
    if cache is not None:
        return bool(cache)
    return not augment and cache_bytes(n_examples, shape) <= max_bytes


@torch.no_grad()
def cache_activations(
    front: nn.Module, loader: Iterable, teacher: nn.Module | None = None
) -> TensorDataset:
    """``(front(x), y[, teacher(x)])`` for every batch of ``loader``, on the CPU, in order.

    ``front`` and ``teacher`` are run in eval mode (their modes are restored).
    """
    device = model_device(front)
    acts, labels, logits = [], [], []
    with eval_mode(front, teacher):
        for x, y, *_ in loader:
            x = x.to(device)
            acts.append(front(x).float().cpu())  # (b, *shape_a)
            labels.append(y.cpu())
            if teacher is not None:
                logits.append(teacher(x).float().cpu())  # (b, classes)
    tensors = [torch.cat(acts), torch.cat(labels)] + ([torch.cat(logits)] if teacher is not None else [])
    return TensorDataset(*tensors)


def cached_loader(dataset: TensorDataset, batch_size: int, seed: int = 0) -> DataLoader:
    """A shuffled (seeded) loader over cached activations."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
