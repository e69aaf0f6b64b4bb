"""Write tiny data sets in the exact on-disk formats that torchvision reads."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_cifar10(root: Path, n_train_per_batch: int = 8, n_test: int = 6, seed: int = 0) -> np.ndarray:
    """cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}; returns the test images (n,32,32,3)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    test_images = None
    for name in names:
        n = n_test if name == "test_batch" else n_train_per_batch
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name.encode(), "labels": labels, "data": data,
                         "filenames": [f"{i}.png".encode() for i in range(n)]}, f)
        if name == "test_batch":
            test_images = data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 8}, f)
    return test_images


def write_cifar100(root: Path, n_train: int = 20, n_test: int = 5, seed: int = 0) -> None:
    """cifar-100-python/{train,test,meta} with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                         "fine_labels": rng.integers(0, 100, size=n).tolist(),
                         "coarse_labels": rng.integers(0, 20, size=n).tolist()}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)],
                     "coarse_label_names": [f"s{i}" for i in range(20)]}, f)


def write_idx(folder: Path, prefix: str, n: int, rng) -> None:
    """MNIST idx files (magic 2051 images, 2049 labels), uncompressed as torchvision keeps them."""
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def write_mnist(root: Path, folder_name: str = "MNIST", n_train: int = 30, n_test: int = 10, seed: int = 0) -> None:
    """<root>/<folder_name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte."""
    rng = np.random.default_rng(seed)
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True)
    write_idx(raw, "train", n_train, rng)
    write_idx(raw, "t10k", n_test, rng)


def write_svhn(root: Path, n_train: int = 12, n_test: int = 4, seed: int = 0) -> None:
    """{train,test}_32x32.mat with X (32, 32, 3, n) and y (n, 1) in 1..10 (10 means digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        savemat(root / f"{name}_32x32.mat", {
            "X": rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8),
            "y": rng.integers(1, 11, size=(n, 1)).astype(np.uint8),
        })


def write_imagefolder(root: Path, classes=("cat", "dog", "fox"), per_class: int = 3, size: int = 20) -> None:
    """root/{train,val}/<class>/<i>.png (RGB PNGs)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for part in ("train", "val"):
        for c in classes:
            folder = root / part / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, size=(size, size + 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
