"""3D MNIST: digits as 16x16x16 voxel volumes, 10 classes.

What the loader promises: ``Splits`` with float32 inputs in [0, 1] shaped
``(N, 1, 16, 16, 16)`` (channels, depth, height, width) and int64 labels, from
one of two sources, recorded in ``info["source"]``:

1. ``full_dataset_vectors.h5`` (the Kaggle "3D MNIST" file; keys ``X_train``
   ``(N, 4096)``, ``y_train``, ``X_test``, ``y_test``) found in ``--data-dir``
   or its ``mnist3d/``, ``3d-mnist/`` subfolder, read with ``h5py`` (an
   optional dependency: without it the file is skipped, with a warning and
   the reason in ``info["h5_skipped"]``). ``info["source"]`` is
   ``"full_dataset_vectors.h5"``.
2. Otherwise 2D digits voxelised by :func:`voxelise`: MNIST found as the
   ``mnist`` dataset finds it (``--data-dir``, cache, download), or
   Fashion-MNIST when MNIST is unavailable. ``info["source"]`` is ``"mnist"``
   or ``"fashion-mnist"``; the split is that dataset's (60,000 / 10,000).

Voxelisation is deterministic: the same 2D files and the same ``seed`` give
bit-identical tensors (every random draw comes from one seeded
``torch.Generator``, drawn for all samples before any work is split into
chunks); another seed gives other random poses. The result is cached as
``uint8`` per (source files, seed, voxeliser version).

Memory: the full voxelised set is 70,000 x 4096 float32 values, about 1.1 GiB
(plus 0.3 GiB of cached ``uint8``); ``num_train``/``num_test`` keep the first
N samples of each split.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pathlib
from typing import TYPE_CHECKING, Any

from harness import Splits
from harness.errors import DataUnavailableError
from harness_plugins.datasets.cache import cached, file_stamp
from harness_plugins.datasets.common import (
    as_path,
    check_count,
    describe_exception,
    make_splits,
    single_thread,
)
from harness_plugins.datasets.mnist import FASHION_MNIST, MNIST, IdxDataset, load_idx_tensors, locate

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

NAME = "mnist3d"
H5_NAME = "full_dataset_vectors.h5"
H5_SUBDIRS = ("", "mnist3d", "3d-mnist", "3d_mnist", "3DMNIST")
SIZE = 16

#: Bump whenever :func:`voxelise` changes its output, so that old cache entries are not reused.
VOXELISER_VERSION = 1
#: Stroke half-thickness in voxels for a full-intensity pixel (scaled per sample by DEPTH_GAIN).
MAX_HALF_THICKNESS = 4.0
#: Per-sample multiplier range of the thickness, so that depth is not a constant.
DEPTH_GAIN = (0.75, 1.25)
#: Per-sample random pose: tilt out of the image plane, rotation within it (degrees), shift (voxels).
MAX_TILT_DEG = 20.0
MAX_SPIN_DEG = 10.0
MAX_SHIFT_VOXELS = 1.0
#: Samples per vectorised step: small enough that each step's tensors (4 MB) stay in the CPU
#: cache, large enough that per-step Python overhead is negligible. Results do not depend on it.
CHUNK = 256


def _generator_seed(seed: int, stream: str) -> int:
    """A 63-bit generator seed derived from ``seed`` (any int) and a stream name."""
    digest = hashlib.sha256(f"harness:{NAME}:voxelise:{int(seed)}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _rotations(angles: "torch.Tensor") -> "torch.Tensor":
    """Rotation matrices ``(N, 3, 3)`` from angles ``(N, 3)``: about x, about y, about z (the depth axis)."""
    import torch

    cos, sin = angles.cos(), angles.sin()
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])

    def matrix(rows: list[list["torch.Tensor"]]) -> "torch.Tensor":
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    cx, sx, cy, sy, cz, sz = cos[:, 0], sin[:, 0], cos[:, 1], sin[:, 1], cos[:, 2], sin[:, 2]
    rot_x = matrix([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    rot_y = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rot_z = matrix([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    return rot_z @ rot_y @ rot_x


def _area_matrix(in_size: int, out_size: int) -> "torch.Tensor":
    """``(out_size, in_size)`` weights of an area (box-filter) resize along one axis.

    Row ``i`` averages the input pixels under output pixel ``i``, counting
    the ones cut by its borders in proportion: ``A @ image @ A.T`` resizes an
    image with no aliasing of thin strokes, as one batched matrix product.
    """
    import torch

    scale = in_size / out_size
    starts = torch.arange(out_size, dtype=torch.float64) * scale
    pixel = torch.arange(in_size, dtype=torch.float64)
    overlap = (torch.minimum(starts[:, None] + scale, pixel[None, :] + 1)
               - torch.maximum(starts[:, None], pixel[None, :])).clamp_min(0)
    return (overlap / scale).to(torch.float32)


def voxelise(images: "torch.Tensor", seed: int, stream: str = "train", size: int = SIZE) -> "torch.Tensor":
    """Turn ``uint8`` images ``(N, H, W)`` into ``uint8`` volumes ``(N, size, size, size)``.

    The volume is a continuous solid, evaluated at the voxel centres:

    1. the image is area-resized to ``size x size`` (intensity ``f``);
    2. it is extruded into depth as a slab centred in the volume whose
       half-thickness grows with intensity (``MAX_HALF_THICKNESS * gain * f``
       voxels: bright stroke cores are thick, faint edges thin), with a soft
       one-voxel edge and a random per-sample ``gain``;
    3. the solid is placed in a random small pose: tilted out of the image
       plane by up to ``MAX_TILT_DEG``, spun in it by up to ``MAX_SPIN_DEG``
       and shifted by up to ``MAX_SHIFT_VOXELS``, so that a class must be
       recognised from a 3D shape, not from one fixed projection.

    Each voxel centre ``p`` is mapped back into the solid's frame
    (``q = R p + t``), ``f`` is sampled bilinearly at ``(q_x, q_y)`` and the
    voxel value is ``f * clamp(half(f) + 0.5 - |q_z|, 0, 1)``. Evaluating the
    solid directly costs one 2D bilinear lookup per voxel instead of building
    a volume and resampling it trilinearly, all vectorised over chunks of
    samples (full MNIST: a few seconds of one CPU core).

    The same inputs, ``seed`` and ``stream`` give bit-identical output; the
    stream name keeps the poses of the two splits independent.
    """
    import torch
    import torch.nn.functional as F

    if images.dim() != 3:
        raise ValueError(f"expected images (N, H, W), got shape {tuple(images.shape)}")
    count, height, width = images.shape
    generator = torch.Generator().manual_seed(_generator_seed(seed, stream))
    # Draw every random number up front, so results do not depend on CHUNK.
    unit = torch.rand((count, 7), generator=generator, dtype=torch.float64) * 2 - 1
    limits = [math.radians(MAX_TILT_DEG), math.radians(MAX_TILT_DEG), math.radians(MAX_SPIN_DEG)]
    angles = unit[:, :3] * torch.tensor(limits, dtype=torch.float64)
    shifts = unit[:, 3:6] * (MAX_SHIFT_VOXELS * 2.0 / size)  # coordinates run over [-1, 1]
    low, high = DEPTH_GAIN
    half_scale = (MAX_HALF_THICKNESS * (low + (high - low) * (unit[:, 6] + 1) / 2)).to(torch.float32)
    theta = torch.cat([_rotations(angles), shifts.unsqueeze(-1)], dim=-1).to(torch.float32)  # (N, 3, 4)

    # Voxel centres along one axis in [-1, 1] (grid_sample's align_corners=False convention).
    axis = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    rows_matrix, cols_matrix = _area_matrix(height, size), _area_matrix(width, size)

    out = torch.empty((count, size**3), dtype=torch.uint8)
    with single_thread():  # many small steps: threads cost more than they give
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            n = stop - start
            flat = images[start:stop].to(torch.float32).div_(255.0)
            flat = (rows_matrix @ flat @ cols_matrix.T).clamp_(0.0, 1.0).unsqueeze(1)  # (n, 1, size, size)
            # q = R p + t is separable over the voxel grid: the part from each axis of p is an
            # outer sum of three (n, 3, size) tables, much cheaper than a (3 x 4) @ (4 x P) product.
            pose = theta[start:stop]
            from_x = pose[:, :, 0, None] * axis  # (n, 3, size): along width
            from_y = pose[:, :, 1, None] * axis  # along height
            from_z = pose[:, :, 2, None] * axis + pose[:, :, 3, None]  # along depth, plus the shift

            def source(component: int) -> "torch.Tensor":  # (n, D, H, W)
                return (from_z[:, component, :, None, None] + from_y[:, component, None, :, None]
                        + from_x[:, component, None, None, :])

            grid = torch.empty((n, size, size, size, 2), dtype=torch.float32)
            grid[..., 0], grid[..., 1] = source(0), source(1)  # where in the image (x, y)
            distance = source(2).abs_().mul_(size / 2.0).view(n, -1)  # voxels from the slab's mid-plane
            intensity = F.grid_sample(
                flat, grid.view(n, 1, -1, 2), mode="bilinear", padding_mode="zeros", align_corners=False
            ).view(n, -1)
            value = intensity * half_scale[start:stop, None] + 0.5
            value = value.sub_(distance).clamp_(0.0, 1.0).mul_(intensity)
            out[start:stop] = value.mul_(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)  # round half up
    return out.view(count, size, size, size)


def _find_h5(data_dir: pathlib.Path | None) -> pathlib.Path | None:
    if data_dir is None:
        return None
    for folder in (data_dir / sub if sub else data_dir for sub in H5_SUBDIRS):
        if (folder / H5_NAME).is_file():
            return folder / H5_NAME
    return None


def _load_h5(path: pathlib.Path, h5py: Any, kwargs: dict[str, Any]) -> Splits:
    """Splits from the Kaggle file; values are clipped to [0, 1] (they are occupancies)."""
    import numpy as np
    import torch

    n_train = check_count(kwargs.get("num_train"), "num_train")
    n_test = check_count(kwargs.get("num_test"), "num_test")
    arrays: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as handle:
            for prefix, limit in (("train", n_train), ("test", n_test)):
                x, y = handle[f"X_{prefix}"], handle[f"y_{prefix}"]
                # the shapes first, then only the rows used: read whole, a 35 KB file declaring 30 GiB was
                # allocated before its shape was looked at; and no data stored in other files (external or
                # virtual), which a file from elsewhere could point at any local file
                if len(x.shape) != 2 or x.shape[1] != SIZE**3 or tuple(y.shape) != (x.shape[0],):
                    raise DataUnavailableError(
                        f"{NAME}: {path} has X_{prefix} {tuple(x.shape)} and y_{prefix} {tuple(y.shape)}, "
                        f"expected (N, {SIZE ** 3}) and (N,)"
                    )
                if any(getattr(d, "is_virtual", False) or getattr(d, "external", None) for d in (x, y)):
                    raise DataUnavailableError(f"{NAME}: {path} stores X_{prefix} or y_{prefix} in other files")
                rows = slice(None) if limit is None else slice(0, limit)
                arrays[f"X_{prefix}"], arrays[f"y_{prefix}"] = np.asarray(x[rows]), np.asarray(y[rows])
    except DataUnavailableError:
        raise
    except Exception as exc:  # missing key, truncated or non-HDF5 file
        raise DataUnavailableError(f"{NAME}: cannot read {path} ({describe_exception(exc)})") from exc

    def split(prefix: str, limit: int | None) -> tuple["torch.Tensor", "torch.Tensor"]:
        x, y = arrays[f"X_{prefix}"], arrays[f"y_{prefix}"]  # of the limit's rows (the shapes checked above)
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataUnavailableError(f"{NAME}: {path} has labels outside 0..9 in y_{prefix}")
        volumes = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).clamp_(0.0, 1.0)
        return volumes.view(-1, 1, SIZE, SIZE, SIZE), torch.from_numpy(y.astype(np.int64))

    return Splits(
        train=split("train", n_train),
        test=split("test", n_test),
        num_classes=10,
        classes=MNIST.classes,
        info={"dataset": NAME, "source": H5_NAME, "path": str(path)},
    )


def _voxel_tensors(
    source: IdxDataset, data_dir: Any, seed: int,
    located: tuple[dict[str, pathlib.Path], pathlib.Path, str] | None = None,
) -> tuple[dict[str, "torch.Tensor"], dict]:
    """Voxelised uint8 tensors of ``source`` (raises DataUnavailableError when it is not found).

    ``located``: what :func:`locate` already returned for ``source``, if the caller has it.
    """
    located = located or locate(source, data_dir)
    files, folder, origin = located
    key = {
        "dataset": NAME,
        "voxeliser": VOXELISER_VERSION,
        "size": SIZE,
        "seed": int(seed),
        "source": source.name,
        "files": {role: file_stamp(path) for role, path in sorted(files.items())},
    }

    def build() -> dict[str, "torch.Tensor"]:
        flat, _ = load_idx_tensors(source, data_dir, located)
        return {
            "train_x": voxelise(flat["train_x"], seed, "train"),
            "train_y": flat["train_y"],
            "test_x": voxelise(flat["test_x"], seed, "test"),
            "test_y": flat["test_y"],
        }

    tensors, cache_info = cached(NAME, key, build)
    info = {"dataset": NAME, "source": source.name, "source_dir": str(folder), "origin": origin,
            "seed": int(seed), "method": f"voxelised {SIZE}^3 v{VOXELISER_VERSION}", **cache_info}
    return tensors, info


def load(data_dir: Any = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Load 3D MNIST from the HDF5 file, or voxelise MNIST (or Fashion-MNIST) digits.

    ``seed`` picks the random poses of voxelised samples; ``num_train`` /
    ``num_test`` keep the first N samples. Other keyword arguments are ignored.
    """
    data_path = as_path(data_dir)
    h5_path = _find_h5(data_path)
    skipped: dict[str, str] = {}
    if h5_path is not None:
        try:
            import h5py
        except ImportError as exc:
            reason = f"{h5_path} found but h5py is not installed ({describe_exception(exc)})"
            log.warning("%s: %s; voxelising 2D digits instead", NAME, reason)
            skipped["h5_skipped"] = reason
        else:
            return _load_h5(h5_path, h5py, kwargs)

    # Fashion-MNIST stands in only when no MNIST files are found; MNIST files that are there but
    # corrupt are an error (DataUnavailableError naming the file), not a reason to switch to clothing.
    try:
        mnist_files = locate(MNIST, data_dir)
        mnist_error = None
    except DataUnavailableError as exc:
        mnist_error = exc
    if mnist_error is None:
        source: IdxDataset = MNIST
        tensors, info = _voxel_tensors(MNIST, data_dir, seed, mnist_files)
    else:
        try:
            source = FASHION_MNIST
            tensors, info = _voxel_tensors(FASHION_MNIST, data_dir, seed)
        except DataUnavailableError:
            if data_path is None:
                where = "anywhere (no --data-dir given)"
            else:
                subdirs = ", ".join(f"{sub}/" for sub in H5_SUBDIRS if sub)
                where = f"in {data_path} (or its {subdirs} subfolders)"
            h5_note = f" ({skipped['h5_skipped']})" if skipped else ""
            raise DataUnavailableError(
                f"{NAME}: no {H5_NAME} {where}{h5_note}, and no 2D digits to voxelise: "
                f"{mnist_error}; Fashion-MNIST was not found either; pass --data-dir with {H5_NAME} "
                "or the MNIST IDX files, or run with network access"
            ) from mnist_error
        # Worth a warning: the run silently changes from digits to clothing otherwise.
        log.warning("%s: MNIST unavailable (%s); voxelising Fashion-MNIST instead", NAME, mnist_error)
        info["mnist_unavailable"] = str(mnist_error)
    info.update(skipped)
    return make_splits(
        tensors,
        num_classes=len(source.classes),
        classes=source.classes,
        info=info,
        num_train=kwargs.get("num_train"),
        num_test=kwargs.get("num_test"),
    )
