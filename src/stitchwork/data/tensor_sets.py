"""Data sets held as tensors in memory: scikit-learn's digits and generated MNIST-1D."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .base import ClassificationData


class TensorImages(Dataset):
    """``(x, y)`` pairs from tensors, with an optional per-example random shift.

    ``max_shift`` pixels of zero-padded translation is the augmentation for tiny images.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, max_shift: int = 0):
        self.x, self.y, self.max_shift = x, y, int(max_shift)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.max_shift:
            s = self.max_shift
            dy, dx = torch.randint(-s, s + 1, (2,)).tolist()
            x = torch.roll(F.pad(x, (s, s, s, s)), shifts=(dy, dx), dims=(-2, -1))[..., s:-s, s:-s]
        return x, self.y[i]


class Digits(ClassificationData):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes). Never downloads.

    The official test set is a fixed 20% of the images (seed 0, independent of
    ``split_seed``); inputs are scaled to [0, 1], optionally resized (bilinear) to
    ``image_size`` px, then standardised with the training images' mean and std.
    """

    TEST_FRACTION = 0.2

    def __init__(self, image_size: int = 8, **kwargs):
        super().__init__(**kwargs)
        if image_size < 4:
            raise ValueError(f"digits image_size must be >= 4 px, got {image_size!r}")
        self.image_size = int(image_size)
        self._tensors: tuple | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return 10

    def _load(self) -> tuple:
        if self._tensors is None:
            from sklearn.datasets import load_digits

            bunch = load_digits()
            x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (n, 1, 8, 8)
            if self.image_size != 8:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
            y = torch.tensor(bunch.target, dtype=torch.long)
            perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
            n_test = int(round(len(y) * self.TEST_FRACTION))
            test, train = perm[:n_test], perm[n_test:]
            mean, std = x[train].mean(), x[train].std()
            x = (x - mean) / std
            self._tensors = (x[train], y[train], x[test], y[test])
        return self._tensors

    def train_source(self, augment: bool) -> Dataset:
        x, y, _, _ = self._load()
        return TensorImages(x, y, max_shift=1 if augment else 0)

    def test_source(self) -> Dataset:
        _, _, x, y = self._load()
        return TensorImages(x, y)


class MNIST1D(ClassificationData):
    """MNIST-1D (Greydanus 2020), generated offline by the ``mnist1d`` package.

    Uses the package's generator with its default arguments (40-sample sequences,
    4,000 train / 1,000 test at ``num_samples=5000``); the download path is never used.
    Augmentation is not defined for this data set and is refused.
    """

    def __init__(self, num_samples: int = 5000, generator_seed: int = 42, **kwargs):
        if kwargs.get("augment"):
            raise ValueError("mnist1d has no augmentation; set data.augment=false")
        super().__init__(**kwargs)
        if num_samples < 100:
            raise ValueError(f"mnist1d num_samples must be >= 100, got {num_samples!r}")
        self.num_samples = int(num_samples)
        self.generator_seed = int(generator_seed)
        self._tensors: tuple | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (40,)

    @property
    def num_classes(self) -> int:
        return 10

    def _load(self) -> tuple:
        if self._tensors is None:
            from mnist1d.data import get_dataset_args, make_dataset

            args = get_dataset_args()
            args.num_samples, args.seed = self.num_samples, self.generator_seed
            state = np.random.get_state()  # the generator reseeds numpy's global RNG
            try:
                data = make_dataset(args)
            finally:
                np.random.set_state(state)
            as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
            as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
            self._tensors = (as_x(data["x"]), as_y(data["y"]), as_x(data["x_test"]), as_y(data["y_test"]))
        return self._tensors

    def train_source(self, augment: bool) -> Dataset:
        x, y, _, _ = self._load()
        return TensorImages(x, y)

    def test_source(self) -> Dataset:
        _, _, x, y = self._load()
        return TensorImages(x, y)
