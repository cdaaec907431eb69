"""CIFAR-10: 32x32 colour images, 10 classes, 50,000 train / 10,000 test.

What the loader promises: ``Splits`` with float32 inputs in [0, 1] shaped
``(N, 3, 32, 32)`` (channels first, RGB), int64 labels, the official split in
the official order (``data_batch_1`` .. ``data_batch_5``, then
``test_batch``) and the class names.

Where the "python version" batches (``cifar-10-batches-py/``) are looked for,
first hit wins: ``--data-dir`` pointing at that folder, at its parent, or at
``cifar10/`` holding it; an earlier download in
``<cache>/datasets/cifar10/download``; a torchvision download there unless
``HARNESS_OFFLINE=1``. Decoded tensors are cached (see ``cache.py``).

About pickle: the official CIFAR-10 python batches *are* pickles (a dict of
``bytes`` keys, a uint8 numpy array and a list of labels), so reading them
needs ``pickle``. Unpickling can run code, so it is done only on these
well-known file names and through :class:`_BatchUnpickler`, which refuses
every global except the handful numpy needs to rebuild an array: a planted
file fails to load instead of executing anything.
"""

from __future__ import annotations

import pathlib
import pickle
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import Splits
from harness.cache import USED_MARK, mark_used
from harness.errors import DataUnavailableError
from harness.text import squeeze
from harness_plugins.datasets.cache import cached, file_stamp
from harness_plugins.datasets.common import as_path, dataset_cache_dir, make_splits, torchvision_download

if TYPE_CHECKING:  # pragma: no cover
    import torch

NAME = "cifar10"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
ARCHIVE = "cifar-10-python.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
READER_VERSION = 1
_FILES_TEXT = f"{FOLDER}/{{{', '.join(TRAIN_BATCHES)}, {TEST_BATCH}}}"

#: The only globals a CIFAR batch pickle may name (numpy 1.x and 2.x spellings).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("__builtin__", "bytes"),  # protocol 2 writes an empty byte string (b"batch_label": b"") as bytes()
    ("builtins", "bytes"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CIFAR batch")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy 2 warns about the numpy.core alias old pickles use
            return super().find_class(module, name)


def _get(batch: dict, key: str) -> Any:
    # The official files were pickled by Python 2: keys come back as bytes with encoding="bytes".
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` uint8 of one batch file."""
    try:
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":  # unpickled, it said "invalid load key, '\x1f'"
                raise DataUnavailableError(f"CIFAR-10 batch {path} is gzip-compressed: decompress it (gunzip) "
                                           "to the plain pickle the python batches are")
            handle.seek(0)
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except DataUnavailableError:
        raise
    except OSError as exc:
        raise DataUnavailableError(f"cannot read CIFAR-10 batch {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # truncated pickle, refused global, garbage
        raise DataUnavailableError(
            f"corrupt CIFAR-10 batch {path} ({type(exc).__name__}: {squeeze(exc, 200)})"
        ) from exc
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataUnavailableError(f"corrupt CIFAR-10 batch {path}: no 'data' array or 'labels'")
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataUnavailableError(
            f"corrupt CIFAR-10 batch {path}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)"
        )
    if labels.ndim == 2 and labels.shape[1] == 1:  # a column of labels, as converters write them
        labels = labels.reshape(-1)
    if labels.shape != (data.shape[0],):
        raise DataUnavailableError(f"corrupt CIFAR-10 batch {path}: labels of shape {labels.shape} for "
                                   f"{data.shape[0]} images, expected ({data.shape[0]},)")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):  # 1.7 was cut to 1, True read as 1
        raise DataUnavailableError(f"corrupt CIFAR-10 batch {path}: labels are {labels.dtype}, expected integers")
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataUnavailableError(f"corrupt CIFAR-10 batch {path}: labels outside 0-9 "
                                   f"(from {labels.min()} to {labels.max()})")
    # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.uint8)


def _candidate_dirs(data_dir: pathlib.Path | None) -> list[tuple[pathlib.Path, str]]:
    candidates = []
    if data_dir is not None:
        candidates += [
            (data_dir, "data_dir"),
            (data_dir / FOLDER, "data_dir"),
            (data_dir / "cifar10" / FOLDER, "data_dir"),
            (data_dir / "cifar10", "data_dir"),
            (data_dir / "CIFAR10" / FOLDER, "data_dir"),
        ]
    candidates.append((dataset_cache_dir(NAME) / "download" / FOLDER, "download"))
    return candidates


def _complete(folder: pathlib.Path) -> bool:
    return all((folder / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH))


def locate(data_dir: Any) -> tuple[pathlib.Path, str]:
    """The folder holding the six batch files, and its origin; downloads when allowed."""
    data_path = as_path(data_dir)
    candidates = _candidate_dirs(data_path)
    download_root = dataset_cache_dir(NAME) / "download"
    partial = []
    for folder, origin in candidates:
        if _complete(folder):
            if origin == "download":  # for harness cache --clear --older-than: a download still in use
                mark_used(download_root / USED_MARK)
            return folder, origin
        present = [name for name in (*TRAIN_BATCHES, TEST_BATCH) if (folder / name).is_file()]
        if present:  # a partial set is worth pointing out; an unrelated folder is not
            partial.append(f"{folder} lacks " + ", ".join(
                name for name in (*TRAIN_BATCHES, TEST_BATCH) if name not in present))
        if (folder / ARCHIVE).is_file():  # what an offline machine was most likely given
            partial.append(f"{folder / ARCHIVE} is there unextracted: tar xzf {folder / ARCHIVE} -C {folder}")
    reason = torchvision_download("CIFAR10", download_root)
    if reason is None:
        if _complete(download_root / FOLDER):
            mark_used(download_root / USED_MARK)
            return download_root / FOLDER, "download"
        reason = f"torchvision finished but {download_root / FOLDER} is incomplete"
    searched = ", ".join(str(folder) for folder, _ in candidates)
    if data_path is None:
        searched += " (no --data-dir given)"
    elif not data_path.is_dir():
        searched += f" ({data_path} does not exist)"
    if partial:
        searched += f" ({'; '.join(partial)})"
    raise DataUnavailableError(
        f"{NAME}: no CIFAR-10 python batches ({_FILES_TEXT}) under {searched} and the download failed "
        f"({reason}); pass --data-dir with the extracted cifar-10-python.tar.gz, or run with network access"
    )


def load_tensors(data_dir: Any) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Decoded uint8 tensors (``train_x`` (N, 3, 32, 32) ...) and info, through the cache."""
    import torch

    folder, origin = locate(data_dir)
    files = [folder / name for name in (*TRAIN_BATCHES, TEST_BATCH)]
    key = {"dataset": NAME, "reader": READER_VERSION, "files": [file_stamp(path) for path in files]}

    def build() -> dict[str, "torch.Tensor"]:
        train = [read_batch(folder / name) for name in TRAIN_BATCHES]
        test_x, test_y = read_batch(folder / TEST_BATCH)
        return {
            "train_x": torch.from_numpy(np.concatenate([x for x, _ in train])),
            "train_y": torch.from_numpy(np.concatenate([y for _, y in train])),
            "test_x": torch.from_numpy(np.ascontiguousarray(test_x)),
            "test_y": torch.from_numpy(test_y),
        }

    tensors, cache_info = cached(NAME, key, build)
    return tensors, {"dataset": NAME, "source": str(folder), "origin": origin, **cache_info}


def load(data_dir: Any = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Load CIFAR-10; ``seed`` is unused. ``num_train``/``num_test`` keep the first N samples."""
    tensors, info = load_tensors(data_dir)
    return make_splits(
        tensors,
        num_classes=len(CLASSES),
        classes=CLASSES,
        info=info,
        num_train=kwargs.get("num_train"),
        num_test=kwargs.get("num_test"),
        add_channel=False,
    )
