"""Reading IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data. MNIST
images are ``0x00000803`` (2051: unsigned bytes, 3 dimensions) and labels
``0x00000801`` (2049: unsigned bytes, 1 dimension).

:func:`read_idx` accepts plain or gzipped files (recognised by content, not by
name) and refuses anything whose magic number, dimensions or length do not
add up: a truncated download or a wrong file raises
:class:`harness.errors.DataUnavailableError` naming the file, instead of
producing garbage tensors.
"""

from __future__ import annotations

import gzip
import pathlib
import struct
import zlib

import numpy as np

from harness.errors import DataUnavailableError
from harness.text import squeeze

#: The four files of an IDX image-classification set: split role -> base names
#: (torchvision's spelling first, then the dotted one some mirrors use).
IDX_FILES: dict[str, tuple[str, ...]] = {
    "train_x": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_y": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_x": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_y": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}

#: How the files are listed in error messages.
IDX_FILES_TEXT = ", ".join(f"{names[0]}[.gz]" for names in IDX_FILES.values())

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def _header_dims(data: bytes, ndim: int) -> tuple[int, ...] | None:
    """The dimensions the IDX header of ``ndim``-D unsigned bytes at the start of ``data`` declares; None when
    ``data`` does not start with a whole one."""
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">I", data[:4])[0] != (_UBYTE << 8) | ndim:
        return None
    return struct.unpack(f">{ndim}I", data[4:header])


def _raw_bytes(path: pathlib.Path, ndim: int) -> tuple[bytes, bool]:
    """The file's bytes, and whether they are all of them: a gzipped one is decompressed only as far as its
    header says it holds, and one byte more to find it over-long (decompressed whole, a 300 KB file took
    600 MiB before being refused)."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
            if start != _GZIP_MAGIC:
                return start + handle.read(), True
    except OSError as exc:
        raise DataUnavailableError(f"cannot read IDX file {path}: {exc.strerror or exc}") from exc
    header = 4 + 4 * ndim
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read(header)
            dims = _header_dims(data, ndim)
            if dims is None:
                return data, False
            size = header + int(np.prod(dims, dtype=np.int64))
            data += stream.read(size - header + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataUnavailableError(
            f"corrupt or truncated gzip file {path} ({type(exc).__name__}: {squeeze(exc)})"
        ) from exc
    return data, len(data) <= size


def read_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """The unsigned-byte array in the IDX file ``path``, which must have ``ndim`` dimensions.

    Raises :class:`DataUnavailableError` naming ``path`` when the file is
    unreadable, not IDX, of another type or shape, truncated or too long.
    """
    data, whole = _raw_bytes(path, ndim)
    header = 4 + 4 * ndim
    expected_magic = (_UBYTE << 8) | ndim
    magic = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if magic is not None and magic != expected_magic:
        raise DataUnavailableError(
            f"not an IDX file of {ndim}-D unsigned bytes: {path} "
            f"(magic number {magic:#010x}, expected {expected_magic:#010x})"
        )
    dims = _header_dims(data, ndim)
    if dims is None:
        raise DataUnavailableError(f"truncated IDX file {path}: {len(data)} bytes, shorter than its header")
    expected_size = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        state = "truncated" if len(data) < expected_size else "over-long"
        has = f"{len(data)} bytes" if whole else "more"  # a gzip is read no further than one byte past
        raise DataUnavailableError(
            f"{state} IDX file {path}: header says {'x'.join(map(str, dims))} "
            f"({expected_size} bytes), file has {has}"
        )
    # Copy out of the immutable bytes so that torch gets a writable array.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_idx_files(directory: pathlib.Path) -> tuple[dict[str, pathlib.Path], list[str]]:
    """The IDX files of one set in ``directory``: ``(found role -> path, missing roles)``.

    For each role the plain file is preferred over the ``.gz`` one (torchvision
    keeps both after extracting).
    """
    found: dict[str, pathlib.Path] = {}
    missing: list[str] = []
    for role, names in IDX_FILES.items():
        for name in names:
            hits = [directory / (name + suffix) for suffix in ("", ".gz")]
            hit = next((p for p in hits if p.is_file()), None)
            if hit is not None:
                found[role] = hit
                break
        else:
            missing.append(role)
    return found, missing


def read_idx_set(files: dict[str, pathlib.Path], image_shape: tuple[int, int] | None = None,
                 num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Read and cross-check the four files of an IDX set.

    Checks that each split has as many labels as images, that images are
    ``image_shape`` when given and that labels are below ``num_classes``.
    """
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_x"], ndim=3)
        labels = read_idx(files[f"{split}_y"], ndim=1)
        if images.shape[0] != labels.shape[0]:
            raise DataUnavailableError(
                f"{files[f'{split}_x']} has {images.shape[0]} images but "
                f"{files[f'{split}_y']} has {labels.shape[0]} labels"
            )
        if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
            raise DataUnavailableError(
                f"{files[f'{split}_x']} holds {images.shape[1]}x{images.shape[2]} images, "
                f"expected {image_shape[0]}x{image_shape[1]}"
            )
        if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
            raise DataUnavailableError(
                f"{files[f'{split}_y']} has label {int(labels.max())}, expected labels below {num_classes}"
            )
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images, labels
    return arrays
