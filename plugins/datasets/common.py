"""Helpers shared by the built-in dataset loaders.

Nothing here is dataset-specific: where the cache lives, whether downloads are
allowed, how a torchvision download is attempted (and why it failed, in one
line), and how decoded ``uint8`` tensors become a :class:`harness.Splits`
(float32 in [0, 1], int64 targets).

Environment variables read here:

- ``HARNESS_CACHE_DIR``: the cache root (default ``~/.cache/harness``);
  datasets use ``<root>/datasets/<name>/``.
- ``HARNESS_OFFLINE``: ``1`` (or ``true``/``yes``/``on``) disables every download (read by
  :func:`harness.cache.offline`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from harness import Splits
from harness.cache import datasets_dir, default_data_dir, offline

if TYPE_CHECKING:  # pragma: no cover
    import torch

def dataset_cache_dir(name: str) -> pathlib.Path:
    """``<cache root>/datasets/<name>`` (not created here); ``harness cache`` lists and clears it."""
    return datasets_dir() / name


def as_path(data_dir: Any) -> pathlib.Path | None:
    """``data_dir`` as an expanded :class:`pathlib.Path`, or ``None`` when not given: the harness's default
    data folder (:func:`harness.cache.default_data_dir`, passed when there is no ``--data-dir``) counts as
    not given unless it exists."""
    if data_dir is None or data_dir == "":
        return None
    path = pathlib.Path(data_dir).expanduser()
    if path == default_data_dir() and not path.is_dir():
        return None
    return path


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line (the harness's own :func:`harness.manager.one_line`, 300 characters)."""
    from harness.manager import one_line

    return one_line(exc, 300)


def torchvision_download(class_name: str, root: pathlib.Path) -> str | None:
    """Download a torchvision dataset (``MNIST``, ``FashionMNIST``, ``CIFAR10``) under ``root``.

    Returns ``None`` on success, otherwise the reason it could not be done, on
    one line. Never raises: a missing or broken torchvision (on some machines
    its compiled ops fail to load: "operator torchvision::nms does not exist"),
    ``HARNESS_OFFLINE=1``, or a network error are all just reasons.
    """
    if offline():
        return f"downloads are disabled by HARNESS_OFFLINE={os.environ['HARNESS_OFFLINE'].strip()}; unset it to download"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision warns about its image extension on import
            import torchvision.datasets as tv_datasets
    except Exception as exc:  # any import failure means "no downloader", not a crash
        return f"torchvision is unavailable: {describe_exception(exc)}"  # its one_line names a known cause
    try:
        root.mkdir(parents=True, exist_ok=True)
        dataset_class = getattr(tv_datasets, class_name)
        # download=True fetches the whole dataset (both splits) once; train=True is arbitrary.
        dataset_class(root=str(root), train=True, download=True)
    except Exception as exc:  # network errors, checksum mismatches, a read-only cache...
        return describe_exception(exc)
    return None


def check_count(value: Any, name: str) -> int | None:
    """Validate an optional positive sample count given as a keyword argument."""
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def to_float(images: "torch.Tensor") -> "torch.Tensor":
    """``uint8`` images to float32 in [0, 1] (a new tensor)."""
    import torch

    return images.to(torch.float32).div_(255.0)


def make_splits(
    tensors: Mapping[str, "torch.Tensor"],
    *,
    num_classes: int,
    classes: tuple[str, ...] | None,
    info: Mapping[str, Any],
    num_train: Any = None,
    num_test: Any = None,
    add_channel: bool = True,
) -> Splits:
    """Build :class:`Splits` from decoded ``uint8`` images and integer labels.

    ``tensors`` has ``train_x``, ``train_y``, ``test_x``, ``test_y``. Images
    get a channel axis when ``add_channel`` (grayscale data stored as
    ``(N, H, W)``). ``num_train``/``num_test`` keep the first N samples of a
    split (the official order), which callers use for quick runs.
    """
    import torch

    n_train = check_count(num_train, "num_train")
    n_test = check_count(num_test, "num_test")

    def split(x: "torch.Tensor", y: "torch.Tensor", n: int | None) -> tuple["torch.Tensor", "torch.Tensor"]:
        if n is not None:
            x, y = x[:n], y[:n]
        x = to_float(x)
        if add_channel:
            x = x.unsqueeze(1)
        return x.contiguous(), y.to(torch.int64).contiguous()

    return Splits(
        train=split(tensors["train_x"], tensors["train_y"], n_train),
        test=split(tensors["test_x"], tensors["test_y"], n_test),
        num_classes=num_classes,
        classes=classes,
        info=dict(info),
    )


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the duration, then restore the setting.

    Data generation issues many small, memory-bound operations; with several
    OpenMP threads (worse, on a busy machine) synchronisation costs more than
    the work. Measured on a shared 2-core machine: voxelising 6,000 digits
    took 0.2 s of CPU on one thread against 2.6 s on two, and ``synthetic3d``
    0.35 s against 0.63 s. One thread also keeps results independent of the
    thread count.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def affine_grid(theta: "torch.Tensor", spatial: tuple[int, ...]) -> "torch.Tensor":
    """What ``F.affine_grid(theta, (N, C, *spatial), align_corners=False)`` returns, computed faster.

    ``theta`` is ``(N, d, d + 1)`` and ``spatial`` has ``d`` sizes, slowest
    axis first, so coordinate ``k`` (x, y[, z]) runs along axis ``d - 1 - k``.
    The map is affine, so each output coordinate is an outer sum of ``d``
    per-axis tables of size ``(N, size)``: no ``(d + 1) x P`` matrix product
    over every grid point (torch's version) is needed.
    """
    import torch

    count, dims = theta.shape[0], len(spatial)
    grid = torch.empty((count, *spatial, dims), dtype=theta.dtype)
    for out in range(dims):
        total = theta[:, out, dims].reshape(count, *([1] * dims))
        for coord in range(dims):
            axis_index = dims - 1 - coord
            size = spatial[axis_index]
            centres = (torch.arange(size, dtype=theta.dtype) * 2 + 1) / size - 1
            shape = [count] + [1] * dims
            shape[1 + axis_index] = size
            total = total + (theta[:, out, coord, None] * centres).view(shape)
        grid[..., out] = total
    return grid
