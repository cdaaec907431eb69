"""The built-in datasets of harness.

=================  ===================  =======  ===============================================
name               input shape          classes  where the data comes from
=================  ===================  =======  ===============================================
``mnist``          (1, 28, 28)          10       IDX files in ``--data-dir``, else a torchvision
                                                 download
``fashion-mnist``  (1, 28, 28)          10       IDX files in ``--data-dir``, else
                                                 ``/usr/share/datasets/fashion-mnist``, else a
                                                 torchvision download
``cifar10``        (3, 32, 32)          10       ``cifar-10-batches-py`` in ``--data-dir``, else a
                                                 torchvision download
``mnist3d``        (1, 16, 16, 16)      10       ``full_dataset_vectors.h5`` in ``--data-dir``,
                                                 else MNIST (or Fashion-MNIST) digits voxelised
``synthetic``      (1, 28, 28)          10       generated from the seed, in memory
``synthetic3d``    (1, 16, 16, 16)      10       generated from the seed, in memory
=================  ===================  =======  ===============================================

Every ``load(data_dir=..., seed=..., **kwargs)`` returns :class:`harness.Splits`
with float32 inputs in [0, 1], channels first, and int64 labels; unknown
keyword arguments are ignored, ``num_train``/``num_test`` limit the sizes.
Data that is nowhere to be found raises
:class:`harness.errors.DataUnavailableError` with a one-line message saying
where it looked, why the download failed, and what to do. Downloads are off
when ``HARNESS_OFFLINE=1``. Decoded tensors are cached (verified, written
atomically) under ``$HARNESS_CACHE_DIR`` or ``~/.cache/harness``, in
``datasets/<name>/``.

This module stays light on purpose: listing plugins must not import torch, so
the loaders live in submodules imported only when a dataset is loaded.
"""

from __future__ import annotations

import pathlib
from typing import Any

from harness import DatasetSpec, Splits, hookimpl


def load_mnist(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """MNIST digits, 60,000 train / 10,000 test."""
    from harness_plugins.datasets import mnist

    return mnist.load("mnist", data_dir=data_dir, seed=seed, **kwargs)


def load_fashion_mnist(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Fashion-MNIST articles of clothing, 60,000 train / 10,000 test."""
    from harness_plugins.datasets import mnist

    return mnist.load("fashion-mnist", data_dir=data_dir, seed=seed, **kwargs)


def load_cifar10(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """CIFAR-10 colour images, 50,000 train / 10,000 test."""
    from harness_plugins.datasets import cifar

    return cifar.load(data_dir=data_dir, seed=seed, **kwargs)


def load_mnist3d(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """3D MNIST volumes: the Kaggle HDF5 file, or 2D digits voxelised deterministically from ``seed``."""
    from harness_plugins.datasets import voxel

    return voxel.load(data_dir=data_dir, seed=seed, **kwargs)


def load_synthetic(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Seeded 28x28 images of 10 classes (2,048 train / 512 test by default)."""
    from harness_plugins.datasets import synthetic

    return synthetic.load("synthetic", data_dir=data_dir, seed=seed, **kwargs)


def load_synthetic3d(data_dir: pathlib.Path | None = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Seeded 16x16x16 volumes of 10 classes (1,024 train / 256 test by default)."""
    from harness_plugins.datasets import synthetic

    return synthetic.load("synthetic3d", data_dir=data_dir, seed=seed, **kwargs)


@hookimpl
def harness_datasets() -> list[DatasetSpec]:
    """The six built-in datasets (see the module docstring)."""
    return [
        DatasetSpec(
            name="mnist",
            load=load_mnist,
            description=(
                "MNIST handwritten digits, 28x28 grayscale, 60k/10k: IDX files from --data-dir "
                "(or its mnist/, MNIST/raw/), else downloaded with torchvision"
            ),
            input_shape=(1, 28, 28),
            num_classes=10,
            tags=("image", "grayscale", "real"),
        ),
        DatasetSpec(
            name="fashion-mnist",
            load=load_fashion_mnist,
            description=(
                "Fashion-MNIST clothing, 28x28 grayscale, 60k/10k: IDX files from --data-dir, else "
                "/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist), else torchvision"
            ),
            input_shape=(1, 28, 28),
            num_classes=10,
            tags=("image", "grayscale", "real"),
        ),
        DatasetSpec(
            name="cifar10",
            load=load_cifar10,
            description=(
                "CIFAR-10 colour images, 32x32 RGB, 50k/10k: cifar-10-batches-py from --data-dir, "
                "else downloaded with torchvision"
            ),
            input_shape=(3, 32, 32),
            num_classes=10,
            tags=("image", "rgb", "real"),
        ),
        DatasetSpec(
            name="mnist3d",
            load=load_mnist3d,
            description=(
                "3D MNIST, 16x16x16 voxels: full_dataset_vectors.h5 from --data-dir (needs h5py), else "
                "MNIST digits (Fashion-MNIST when MNIST is unavailable) voxelised deterministically "
                "per seed; info['source'] says which"
            ),
            input_shape=(1, 16, 16, 16),
            num_classes=10,
            tags=("volume", "real"),
        ),
        DatasetSpec(
            name="synthetic",
            load=load_synthetic,
            description=(
                "Synthetic 28x28 images, 10 learnable classes made in memory from the seed "
                "(2048 train / 512 test; num_train/num_test override)"
            ),
            input_shape=(1, 28, 28),
            num_classes=10,
            tags=("image", "synthetic", "offline"),
        ),
        DatasetSpec(
            name="synthetic3d",
            load=load_synthetic3d,
            description=(
                "Synthetic 16x16x16 volumes, 10 learnable classes made in memory from the seed "
                "(1024 train / 256 test; num_train/num_test override)"
            ),
            input_shape=(1, 16, 16, 16),
            num_classes=10,
            tags=("volume", "synthetic", "offline"),
        ),
    ]
