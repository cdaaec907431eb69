"""MNIST and Fashion-MNIST: 28x28 grayscale, 10 classes, 60,000 train / 10,000 test.

What the loaders promise: ``Splits`` with float32 inputs in [0, 1] shaped
``(N, 1, 28, 28)``, int64 labels, the official train/test split in the
official order, and ``classes`` names. ``info`` records where the files came
from (``source``, ``origin``: ``data_dir``, ``system`` or ``download``) and
whether the decoded tensors came from the cache.

Where the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) are looked
for, first hit wins:

1. ``--data-dir`` itself, then its conventional subfolders (``mnist/``,
   ``MNIST/raw/`` for MNIST; ``fashion-mnist/``, ``FashionMNIST/raw/`` ...
   for Fashion-MNIST);
2. system folders (Fashion-MNIST: ``/usr/share/datasets/fashion-mnist``, from
   the Debian package ``dataset-fashion-mnist``);
3. an earlier download in the cache, ``<cache>/datasets/<name>/download``;
4. a torchvision download into that folder, unless ``HARNESS_OFFLINE=1``.

Both datasets use the same file names, and one ``--data-dir`` serves every
dataset of a run, so a folder whose training labels start like the *other*
dataset's canonical files is skipped (with a note in the error message, should
nothing else be found): ``--datasets mnist,fashion-mnist --data-dir
mnist-folder`` must not train "Fashion-MNIST" on digits.
"""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness import Splits
from harness.cache import USED_MARK, mark_used
from harness.errors import DataUnavailableError
from harness_plugins.datasets.cache import cached, file_stamp
from harness_plugins.datasets.common import (
    as_path,
    dataset_cache_dir,
    make_splits,
    torchvision_download,
)
from harness_plugins.datasets.idx import IDX_FILES, IDX_FILES_TEXT, find_idx_files, read_idx, read_idx_set

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: Bump when decoding changes, so that cached tensors from older code are not reused.
READER_VERSION = 1


@dataclass(frozen=True)
class IdxDataset:
    """Where one IDX dataset is looked for and how it is described."""

    name: str
    title: str
    subdirs: tuple[str, ...]
    system_dirs: tuple[pathlib.Path, ...]
    torchvision_class: str
    classes: tuple[str, ...]
    #: The first training labels of the canonical files, to recognise them in a folder.
    fingerprint: tuple[int, ...]
    remedy: str

    @property
    def download_root(self) -> pathlib.Path:
        return dataset_cache_dir(self.name) / "download"

    @property
    def download_dir(self) -> pathlib.Path:
        """Where torchvision leaves the raw IDX files under :attr:`download_root`."""
        return self.download_root / self.torchvision_class / "raw"


MNIST = IdxDataset(
    name="mnist",
    title="MNIST",
    subdirs=("", "mnist", "MNIST/raw", "MNIST", "raw"),  # "raw": torchvision's MNIST/ folder given itself
    system_dirs=(),
    torchvision_class="MNIST",
    classes=tuple(str(digit) for digit in range(10)),
    fingerprint=(5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7),
    remedy="pass --data-dir with the MNIST IDX files, or run with network access",
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    subdirs=("", "fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST", "raw"),
    system_dirs=(pathlib.Path("/usr/share/datasets/fashion-mnist"),),
    torchvision_class="FashionMNIST",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    fingerprint=(9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9),
    remedy=(
        "pass --data-dir with the Fashion-MNIST IDX files, install them with "
        "`apt-get install dataset-fashion-mnist`, or run with network access"
    ),
)

IDX_DATASETS: dict[str, IdxDataset] = {MNIST.name: MNIST, FASHION_MNIST.name: FASHION_MNIST}


def _identify(labels_path: pathlib.Path) -> IdxDataset | None:
    """The known dataset whose canonical training labels start like ``labels_path``'s, if any."""
    labels = read_idx(labels_path, ndim=1)
    head = tuple(int(v) for v in labels[:16])
    for dataset in IDX_DATASETS.values():
        if len(head) == len(dataset.fingerprint) and head == dataset.fingerprint:
            return dataset
    return None


def _candidate_dirs(dataset: IdxDataset, data_dir: pathlib.Path | None) -> list[tuple[pathlib.Path, str]]:
    candidates: list[tuple[pathlib.Path, str]] = []
    if data_dir is not None:
        candidates += [(data_dir / sub if sub else data_dir, "data_dir") for sub in dataset.subdirs]
    candidates += [(path, "system") for path in dataset.system_dirs]
    candidates.append((dataset.download_dir, "download"))
    seen: set[pathlib.Path] = set()
    unique = []
    for path, origin in candidates:
        if path not in seen:
            seen.add(path)
            unique.append((path, origin))
    return unique


def locate(dataset: IdxDataset, data_dir: Any) -> tuple[dict[str, pathlib.Path], pathlib.Path, str]:
    """Find (or download) the IDX files of ``dataset``: ``(files, folder, origin)``.

    Raises :class:`DataUnavailableError` with a one-line message saying where
    it looked, why the download failed and what the user can do.
    """
    data_path = as_path(data_dir)
    candidates = _candidate_dirs(dataset, data_path)
    notes: list[str] = []
    if data_path is not None and not data_path.is_dir():
        notes.append(f"{data_path} does not exist")
    for folder, origin in candidates:
        if not folder.is_dir():
            continue
        files, missing = find_idx_files(folder)
        if missing:
            if files:  # a partial set is worth pointing out; an unrelated folder is not
                notes.append(f"{folder} lacks {', '.join(IDX_FILES[role][0] for role in missing)}")
            continue
        other = _identify(files["train_y"])
        if other is not None and other is not dataset:
            log.info("%s: skipping %s, which holds %s", dataset.name, folder, other.title)
            notes.append(f"{folder} holds {other.title}, not {dataset.title}")
            continue
        if notes and data_path is not None and origin != "data_dir":  # the folder the user named was passed over
            log.warning("%s: %s; using %s instead", dataset.name, "; ".join(notes), folder)
        if origin == "download":  # for harness cache --clear --older-than: a download still in use
            mark_used(dataset.download_root / USED_MARK)
        return files, folder, origin

    reason = torchvision_download(dataset.torchvision_class, dataset.download_root)
    if reason is None:
        files, missing = find_idx_files(dataset.download_dir)
        if not missing:
            mark_used(dataset.download_root / USED_MARK)
            return files, dataset.download_dir, "download"
        reason = f"torchvision finished but {dataset.download_dir} lacks {', '.join(missing)}"

    searched = ", ".join(str(folder) for folder, _ in candidates)
    if data_path is None:
        searched += " (no --data-dir given)"
    noted = f" ({'; '.join(notes)})" if notes else ""
    raise DataUnavailableError(
        f"{dataset.name}: no {dataset.title} IDX files ({IDX_FILES_TEXT}) under {searched}{noted} "
        f"and the download failed ({reason}); {dataset.remedy}"
    )


def load_idx_tensors(dataset: IdxDataset, data_dir: Any,
                     located: tuple[dict[str, pathlib.Path], pathlib.Path, str] | None = None,
                     ) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Decoded ``uint8`` tensors of ``dataset`` (``train_x`` (N, 28, 28), ``train_y`` (N,) ...) and info.

    ``located`` is what :func:`locate` already returned for it, if the caller
    has it. Decoding happens once per set of source files; later calls read the
    verified cache entry.
    """
    import torch

    files, folder, origin = located or locate(dataset, data_dir)
    key = {
        "dataset": dataset.name,
        "reader": READER_VERSION,
        "files": {role: file_stamp(path) for role, path in sorted(files.items())},
    }

    def build() -> dict[str, "torch.Tensor"]:
        arrays = read_idx_set(files, image_shape=(28, 28), num_classes=len(dataset.classes))
        return {name: torch.from_numpy(array) for name, array in arrays.items()}

    tensors, cache_info = cached(dataset.name, key, build)
    info = {
        "dataset": dataset.name,
        "source": str(folder),
        "origin": origin,
        "files": {role: str(path) for role, path in files.items()},
        **cache_info,
    }
    return tensors, info


def load(dataset_name: str, data_dir: Any = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Load ``mnist`` or ``fashion-mnist``; ``seed`` is unused (the data is fixed).

    Optional ``num_train``/``num_test`` keep the first N samples of a split.
    Other keyword arguments are ignored.
    """
    dataset = IDX_DATASETS[dataset_name]
    tensors, info = load_idx_tensors(dataset, data_dir)
    return make_splits(
        tensors,
        num_classes=len(dataset.classes),
        classes=dataset.classes,
        info=info,
        num_train=kwargs.get("num_train"),
        num_test=kwargs.get("num_test"),
    )
