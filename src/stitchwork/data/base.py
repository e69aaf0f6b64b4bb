"""Shared machinery of stitchwork's data modules: seeded splits, subsets, loaders.

A data module knows its *training source* (the official training set, with or without
augmentation) and its *test source*. From them it carves a validation split with a
fixed seed and, optionally, a seeded training subset (for "more data" experiments).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset


class TrainSubsetError(ValueError):
    """A training subset too small to train a classifier on (fewer examples than classes)."""


class ClassificationData(L.LightningDataModule, abc.ABC):
    """Seeded train / val / test splits of a classification data set.

    Parameters
    ----------
    batch_size
        Default loader batch size (training jobs may pass their own).
    num_workers
        DataLoader workers; does not change results.
    augment
        Random augmentation on the training split only.
    train_subset
        ``None`` (all), an ``int`` number of examples, or a fraction in (0, 1]; ``1`` is one
        example, ``1.0`` the whole split. Fewer examples than classes are refused.
    subset_seed
        Seed of the training subset draw.
    val_size
        Examples held out of the official training set for validation: an ``int`` or
        a fraction in [0, 1).
    split_seed
        Seed of the train/validation split.
    """

    #: Settings on the zoo's runtime list that are this data set's *content* and so stay in
    #: a model's identity (an image folder's ``root``; CIFAR's is only where it is stored).
    content_keys: tuple[str, ...] = ()

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int = 0,
        augment: bool = False,
        train_subset: int | float | None = None,
        subset_seed: int = 0,
        val_size: int | float = 0.1,
        split_seed: int = 0,
    ):
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.augment = bool(augment)
        self.train_subset = train_subset
        self.subset_seed = int(subset_seed)
        self.val_size = val_size
        self.split_seed = int(split_seed)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # -- what a concrete data set provides -------------------------------------------
    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example, e.g. ``(3, 32, 32)``."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Number of classes."""

    @abc.abstractmethod
    def train_source(self, augment: bool) -> Dataset:
        """The full official training set, augmented or not (same order either way)."""

    @abc.abstractmethod
    def test_source(self) -> Dataset:
        """The official test set, never augmented."""

    # -- splits -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        plain = self.train_source(augment=False)
        train_idx, val_idx = split_indices(len(plain), self.val_size, self.split_seed)
        train_idx = subset_indices(train_idx, self.train_subset, self.subset_seed)
        if self.train_subset is not None and len(train_idx) < self.num_classes:
            raise TrainSubsetError(
                f"train_subset={self.train_subset!r} leaves {len(train_idx)} training example(s), fewer "
                f"than the {self.num_classes} classes of {type(self).__name__}: some classes could never "
                f"be seen. Use a count of at least {self.num_classes}, a larger fraction, or null (all)."
            )
        source = self.train_source(augment=True) if self.augment else plain
        self.train_set = Subset(source, train_idx)
        self.val_set = Subset(plain, val_idx)
        self.test_set = self.test_source()

    def _require_setup(self) -> None:
        if self.train_set is None:
            self.setup()

    # -- loaders ----------------------------------------------------------------------
    def loader(self, split: str, batch_size: int | None = None, shuffle: bool | None = None) -> DataLoader:
        """A DataLoader over ``split`` in {"train", "val", "test"}; shuffled only for train."""
        self._require_setup()
        sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        if split not in sets:
            raise ValueError(f"unknown split {split!r}; valid: train, val, test")
        shuffle = (split == "train") if shuffle is None else shuffle
        generator = torch.Generator().manual_seed(self.split_seed) if shuffle else None
        return DataLoader(
            sets[split],
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


def split_indices(n: int, val_size: int | float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded disjoint (train, val) index lists covering ``range(n)``."""
    if isinstance(val_size, float) and not isinstance(val_size, bool):
        if not 0.0 <= val_size < 1.0:
            raise ValueError(f"val_size as a fraction must be in [0, 1), got {val_size!r}")
        n_val = int(round(n * val_size))
    else:
        n_val = int(val_size)
        if not 0 <= n_val < n:
            raise ValueError(f"val_size must be in [0, {n}) examples, got {val_size!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def subset_indices(indices: Sequence[int], subset: int | float | None, seed: int) -> list[int]:
    """A seeded subset of ``indices`` of a given size or fraction (``None``: all of them)."""
    indices = list(indices)
    if subset is None:
        return indices
    n = len(indices)
    if isinstance(subset, float) and not isinstance(subset, bool):
        if not 0.0 < subset <= 1.0:
            raise ValueError(f"train_subset as a fraction must be in (0, 1], got {subset!r}")
        k = max(1, int(round(n * subset)))
    else:
        k = int(subset)
        if not 0 < k <= n:
            raise ValueError(f"train_subset must be between 1 and {n} examples, got {subset!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]
    return sorted(indices[i] for i in perm.tolist())
