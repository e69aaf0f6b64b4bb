"""torchvision image data sets (CIFAR-10/100, MNIST, Fashion-MNIST, SVHN) and ImageFolder.

Files are read from ``root`` in torchvision's own on-disk formats. With
``download=True`` torchvision fetches the archives and verifies their MD5 sums; files
already on disk are only checked for presence (torchvision's per-file MD5 check would
reread every file at each start, and refuses files that load correctly but were
written by another tool, such as the small real-format files of our tests).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torchvision
from torch.utils.data import Dataset
from torchvision import transforms as T

from .base import ClassificationData


class DatasetNotFoundError(FileNotFoundError):
    """Data files are missing and downloading was not asked for."""


class DatasetCorruptError(OSError):
    """A data file is there but cannot be read (truncated, damaged, another format)."""


#: What torchvision raises on a damaged pickle or array file.
_READ_ERRORS = (pickle.UnpicklingError, EOFError, KeyError, IndexError, ValueError, UnicodeDecodeError)


def _presence_only(files):
    """torchvision's (name, md5) lists with the MD5s dropped: check that files exist."""
    return [[name, None] for name, _ in files]


class _CIFAR10(torchvision.datasets.CIFAR10):
    train_list = _presence_only(torchvision.datasets.CIFAR10.train_list)
    test_list = _presence_only(torchvision.datasets.CIFAR10.test_list)
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class _CIFAR100(torchvision.datasets.CIFAR100):
    train_list = _presence_only(torchvision.datasets.CIFAR100.train_list)
    test_list = _presence_only(torchvision.datasets.CIFAR100.test_list)
    meta = {**torchvision.datasets.CIFAR100.meta, "md5": None}


class _SVHN(torchvision.datasets.SVHN):
    split_list = {
        split: [url, name, None] for split, (url, name, _) in torchvision.datasets.SVHN.split_list.items()
    }

    def download(self) -> None:  # fetch with the real checksum
        url, name, md5 = torchvision.datasets.SVHN.split_list[self.split]
        torchvision.datasets.utils.download_url(url, self.root, name, md5)


@dataclass(frozen=True)
class VisionSpec:
    """What differs between the torchvision data sets."""

    cls: type
    shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips are label-preserving
    pad: int  # random-crop padding for augmentation
    files: str  # what the user should find under root
    split_kw: str = "train"  # SVHN takes split="train"/"test"


VISION_SETS: dict[str, VisionSpec] = {
    "cifar10": VisionSpec(_CIFAR10, (3, 32, 32), 10, (0.4914, 0.4822, 0.4465),
                          (0.2470, 0.2435, 0.2616), True, 4, "cifar-10-batches-py/"),
    "cifar100": VisionSpec(_CIFAR100, (3, 32, 32), 100, (0.5071, 0.4865, 0.4409),
                           (0.2673, 0.2564, 0.2762), True, 4, "cifar-100-python/"),
    "mnist": VisionSpec(torchvision.datasets.MNIST, (1, 28, 28), 10, (0.1307,), (0.3081,),
                        False, 2, "MNIST/raw/"),
    "fashion_mnist": VisionSpec(torchvision.datasets.FashionMNIST, (1, 28, 28), 10, (0.2860,),
                                (0.3530,), True, 2, "FashionMNIST/raw/"),
    "svhn": VisionSpec(_SVHN, (3, 32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                       False, 4, "train_32x32.mat and test_32x32.mat", split_kw="split"),
}


class VisionData(ClassificationData):
    """One of :data:`VISION_SETS` read from ``root`` (downloaded only if ``download``).

    Augmentation is a padded random crop, plus horizontal flips where they keep labels.
    """

    def __init__(self, name: str, root: str = "data", download: bool = False, **kwargs):
        if name not in VISION_SETS:
            raise ValueError(f"unknown torchvision data set {name!r}; valid: {', '.join(VISION_SETS)}")
        super().__init__(**kwargs)
        self.name, self.root, self.download = name, str(Path(root).expanduser()), bool(download)
        self.spec = VISION_SETS[name]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def num_classes(self) -> int:
        return self.spec.classes

    def prepare_data(self) -> None:
        if self.download:
            self._make(train=True, transform=None, download=True)
            self._make(train=False, transform=None, download=True)

    def _transform(self, augment: bool):
        steps = []
        if augment:
            steps.append(T.RandomCrop(self.spec.shape[1], padding=self.spec.pad))
            if self.spec.flip:
                steps.append(T.RandomHorizontalFlip())
        steps += [T.ToTensor(), T.Normalize(self.spec.mean, self.spec.std)]
        return T.Compose(steps)

    def _make(self, train: bool, transform, download: bool = False) -> Dataset:
        split = {"split": "train" if train else "test"} if self.spec.split_kw == "split" else {"train": train}
        try:
            return self.spec.cls(self.root, transform=transform, download=download, **split)
        except _READ_ERRORS as err:
            raise DatasetCorruptError(self._corrupt_message(err)) from err
        except RuntimeError as err:
            if download or "not found" not in str(err).lower():
                raise
            raise DatasetNotFoundError(
                f"{self.name} files not found under data.root={self.root!r} (expected {self.spec.files}). "
                f"Point data.root at the folder that holds them, or add data.download=true to fetch them."
            ) from None

    def _corrupt_message(self, err: Exception) -> str:
        """Which file under ``root`` does not load (CIFAR pickles are re-read one by one to find it)."""
        bad, reason = self._unreadable_pickle(), f"{type(err).__name__}: {err}"
        if bad is not None:
            path, reason = bad
            what = f"cannot read {path}"
        else:
            what = f"cannot read the {self.spec.files} files under data.root={self.root!r}"
        return (f"{self.name}: {what} ({reason}); the file is damaged or not in torchvision's format. "
                f"Replace it with a good copy (or delete it and add data.download=true).")  # fmt: skip

    def _unreadable_pickle(self) -> tuple[Path, str] | None:
        cls = self.spec.cls
        if not hasattr(cls, "base_folder") or not hasattr(cls, "train_list"):
            return None
        names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        for name in names:
            path = Path(self.root) / cls.base_folder / name
            try:
                with open(path, "rb") as f:
                    pickle.load(f, encoding="latin1")
            except _READ_ERRORS as err:
                return path, f"{type(err).__name__}: {err}"
            except OSError:
                continue
        return None

    def train_source(self, augment: bool) -> Dataset:
        if self.download:
            self.prepare_data()
        return self._make(train=True, transform=self._transform(augment))

    def test_source(self) -> Dataset:
        return self._make(train=False, transform=self._transform(False))


class ImageFolderData(ClassificationData):
    """ImageNet-style ``root/train/<class>/*`` and ``root/val/<class>/*`` folders.

    Images are resized to ``image_size`` (random-resized crop and flip when augmenting;
    resize + centre crop otherwise) and normalised with ``mean`` / ``std``.
    """

    content_keys = ("root",)  # the folder is the data: two roots are two data sets

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        for part in ("train", "val"):
            if not (self.root / part).is_dir():
                raise DatasetNotFoundError(
                    f"imagefolder needs {str(self.root / part)!r} (one sub-folder per class); "
                    f"set data.root to a folder with train/ and val/"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return len([p for p in (self.root / "train").iterdir() if p.is_dir()])

    def _transform(self, augment: bool):
        size = self.image_size
        steps = (
            [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
            if augment
            else [T.Resize(int(round(size * 8 / 7))), T.CenterCrop(size)]
        )
        return T.Compose([*steps, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def train_source(self, augment: bool) -> Dataset:
        return torchvision.datasets.ImageFolder(self.root / "train", self._transform(augment))

    def test_source(self) -> Dataset:
        return torchvision.datasets.ImageFolder(self.root / "val", self._transform(False))
