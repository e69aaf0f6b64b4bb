"""Data modules: seeded splits and subsets, embedded data, real on-disk formats, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stitchwork.data import MNIST1D, DatasetNotFoundError, Digits, ImageFolderData, VisionData
from stitchwork.data.base import split_indices, subset_indices

from .real_format_files import (
    write_cifar10,
    write_cifar100,
    write_imagefolder,
    write_mnist,
    write_svhn,
)


def _labels(dataset):
    return torch.stack([torch.as_tensor(dataset[i][1]) for i in range(len(dataset))])


def test_digits_splits_are_disjoint_seeded_and_complete():
    data = Digits(val_size=0.1)
    data.setup()
    train, val = data.train_set.indices, data.val_set.indices
    assert not set(train) & set(val)
    assert len(train) + len(val) + len(data.test_set) == 1797
    assert len(data.test_set) == 359
    again = Digits(val_size=0.1)
    again.setup()
    assert again.train_set.indices == train
    other = Digits(val_size=0.1, split_seed=1)
    other.setup()
    assert other.train_set.indices != train
    # the test set never depends on split_seed
    assert torch.equal(_labels(data.test_set), _labels(other.test_set))


def test_digits_inputs_are_standardised_and_resizable():
    data = Digits(image_size=16, val_size=0)
    data.setup()
    x, y = next(iter(data.loader("train", batch_size=2000, shuffle=False)))
    assert x.shape == (len(data.train_set), 1, 16, 16)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert set(y.tolist()) == set(range(10))


def test_digits_augmentation_shifts_training_images_only():
    torch.manual_seed(0)
    data = Digits(augment=True)
    data.setup()
    plain = Digits()
    plain.setup()
    i = 0
    shifted = [data.train_set[i][0] for _ in range(10)]
    assert any(not torch.equal(s, plain.train_set[i][0]) for s in shifted)
    assert torch.equal(data.val_set[0][0], plain.val_set[0][0])
    assert torch.equal(data.test_set[0][0], plain.test_set[0][0])


def test_training_subset_by_size_and_fraction_is_seeded():
    base = list(range(100, 200))
    a = subset_indices(base, 10, seed=3)
    assert len(a) == 10 and set(a) <= set(base)
    assert subset_indices(base, 10, seed=3) == a
    assert subset_indices(base, 10, seed=4) != a
    assert len(subset_indices(base, 0.25, seed=0)) == 25
    data = Digits(train_subset=100, subset_seed=7)
    data.setup()
    assert len(data.train_set) == 100


@pytest.mark.parametrize("subset, match", [(0, "between 1 and"), (10_000, "between 1 and"), (1.5, r"\(0, 1\]")])
def test_bad_training_subset_is_named(subset, match):
    with pytest.raises(ValueError, match=match):
        subset_indices(list(range(50)), subset, seed=0)


def test_bad_val_size_is_named():
    with pytest.raises(ValueError, match=r"val_size as a fraction must be in \[0, 1\), got 1.5"):
        split_indices(100, 1.5, 0)


def test_mnist1d_is_generated_offline_and_deterministic():
    state = np.random.get_state()
    data = MNIST1D(num_samples=1000)
    data.setup()
    assert data.input_shape == (40,)
    x, y = data.train_set[0]
    assert x.shape == (40,) and 0 <= int(y) < 10
    assert len(data.test_set) == 200 and len(data.train_set) + len(data.val_set) == 800
    again = MNIST1D(num_samples=1000)
    again.setup()
    assert torch.equal(again.train_set[5][0], data.train_set[5][0])
    # the generator reseeds numpy's global RNG; the data module puts it back
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_cifar10_reads_the_real_pickle_format(tmp_path):
    test_images = write_cifar10(tmp_path)
    data = VisionData("cifar10", root=str(tmp_path), val_size=8, augment=True)
    data.setup()
    assert len(data.train_set) == 32 and len(data.val_set) == 8 and len(data.test_set) == 6
    x, y = data.test_set[0]
    assert x.shape == (3, 32, 32)
    mean = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
    std = torch.tensor([0.2470, 0.2435, 0.2616])[:, None, None]
    expected = torch.tensor(test_images[0]).permute(2, 0, 1).float() / 255
    assert torch.allclose(x * std + mean, expected, atol=1e-5)
    batch = next(iter(data.loader("train", batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32)


def test_cifar100_mnist_fashion_svhn_read_their_real_formats(tmp_path):
    write_cifar100(tmp_path / "c100")
    write_mnist(tmp_path / "m", "MNIST")
    write_mnist(tmp_path / "f", "FashionMNIST")
    write_svhn(tmp_path / "s")
    cases = [("cifar100", "c100", (3, 32, 32), 20, 5), ("mnist", "m", (1, 28, 28), 30, 10),
             ("fashion_mnist", "f", (1, 28, 28), 30, 10), ("svhn", "s", (3, 32, 32), 12, 4)]
    for name, folder, shape, n_train, n_test in cases:
        data = VisionData(name, root=str(tmp_path / folder), val_size=2)
        data.setup()
        assert len(data.train_set) == n_train - 2 and len(data.test_set) == n_test, name
        x, y = data.train_set[0]
        assert tuple(x.shape) == shape and 0 <= int(y) < data.num_classes, name


def test_missing_files_name_the_root_and_the_download_override(tmp_path):
    data = VisionData("cifar10", root=str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match=r"data\.root=.*empty.*data\.download=true"):
        data.setup()


def test_unknown_dataset_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown torchvision data set 'cifar11'; valid: cifar10, cifar100"):
        VisionData("cifar11")


def test_imagefolder_reads_class_folders(tmp_path):
    write_imagefolder(tmp_path)
    data = ImageFolderData(str(tmp_path), image_size=16, val_size=0, augment=False)
    data.setup()
    assert data.num_classes == 3 and data.input_shape == (3, 16, 16)
    assert len(data.train_set) == 9 and len(data.test_set) == 9
    assert data.test_set[0][0].shape == (3, 16, 16)
    with pytest.raises(DatasetNotFoundError, match="train/ and val/"):
        ImageFolderData(str(tmp_path / "nothing"))
