"""LightningDataModules with seeded splits: digits, mnist1d, torchvision sets, ImageFolder."""

from .base import ClassificationData, split_indices, subset_indices
from .tensor_sets import MNIST1D, Digits, TensorImages
from .vision_sets import (
    VISION_SETS,
    DatasetCorruptError,
    DatasetNotFoundError,
    ImageFolderData,
    VisionData,
)

__all__ = [
    "VISION_SETS",
    "ClassificationData",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "Digits",
    "ImageFolderData",
    "MNIST1D",
    "TensorImages",
    "VisionData",
    "split_indices",
    "subset_indices",
]
