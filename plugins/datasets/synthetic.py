"""``synthetic`` and ``synthetic3d``: learnable classification data made in memory from the seed.

What the loaders promise: ``Splits`` with float32 inputs in [0, 1] (images
``(N, 1, 28, 28)`` or volumes ``(N, 1, 16, 16, 16)``) and int64 labels,
balanced over 10 classes, with no files, no network and no cache. The same
seed and sizes give bit-identical tensors; another seed gives other data
(other class prototypes and other samples). The test split does not depend on
``num_train`` (each split has its own random stream).

How: 10 seeded *prototypes*, smooth random fields (uniform noise on a coarse
grid, upsampled), one per class. Every sample is its class's prototype under a
random small affine transform (rotation, scale, shift), random contrast and
brightness, plus Gaussian pixel noise, clipped to [0, 1]. Prototypes differ
over the whole field, so a linear model already separates the classes well
above chance after one epoch, while the transforms and noise keep it from
being a lookup table; convolutional models do better.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from harness import Splits
from harness_plugins.datasets.common import affine_grid, check_count, single_thread

if TYPE_CHECKING:  # pragma: no cover
    import torch

NUM_CLASSES = 10
CLASSES = tuple(f"class-{index}" for index in range(NUM_CLASSES))

#: (input shape, coarse prototype grid, default train size, default test size) per dataset.
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...], int, int]] = {
    "synthetic": ((1, 28, 28), (7, 7), 2048, 512),
    "synthetic3d": ((1, 16, 16, 16), (4, 4, 4), 1024, 256),
}

#: Per-sample variation: rotation (degrees), scale range, shift (fraction of the half-width),
#: contrast range, brightness range, pixel noise standard deviation.
MAX_ROTATION_DEG = 12.0
SCALE = (0.9, 1.1)
MAX_SHIFT = 0.12
CONTRAST = (0.6, 1.0)
BRIGHTNESS = (0.0, 0.15)
NOISE_STD = 0.12


def _generator(name: str, seed: int, stream: str) -> "torch.Generator":
    import torch

    digest = hashlib.sha256(f"harness:{name}:{int(seed)}:{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _uniform(generator: "torch.Generator", shape: tuple[int, ...], low: float, high: float) -> "torch.Tensor":
    import torch

    return low + (high - low) * torch.rand(shape, generator=generator)


def _prototypes(name: str, seed: int) -> "torch.Tensor":
    """``(10, 1, *spatial)`` smooth fields in [0, 1], one per class."""
    import torch
    import torch.nn.functional as F

    shape, coarse, _, _ = SHAPES[name]
    generator = _generator(name, seed, "prototypes")
    fields = torch.rand((NUM_CLASSES, 1, *coarse), generator=generator)
    mode = "bicubic" if len(coarse) == 2 else "trilinear"
    fields = F.interpolate(fields, size=shape[1:], mode=mode, align_corners=False)
    flat = fields.view(NUM_CLASSES, -1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-6)).view_as(fields)


def _affine(generator: "torch.Generator", count: int, dims: int) -> "torch.Tensor":
    """Random small affine matrices ``(count, dims, dims + 1)`` for ``affine_grid``."""
    import torch

    scale = _uniform(generator, (count, 1, 1), *SCALE)
    shift = _uniform(generator, (count, dims, 1), -MAX_SHIFT, MAX_SHIFT)
    angle = _uniform(generator, (count,), -1.0, 1.0) * math.radians(MAX_ROTATION_DEG)
    rotation = torch.eye(dims).repeat(count, 1, 1)
    # Rotate in the plane of the last two spatial axes (x, y for images; x, y of volumes as well).
    cos, sin = angle.cos(), angle.sin()
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, -sin, sin, cos
    return torch.cat([rotation * scale, shift], dim=2)


def _samples(name: str, seed: int, stream: str, count: int, prototypes: "torch.Tensor"):
    import torch
    import torch.nn.functional as F

    generator = _generator(name, seed, stream)
    labels = (torch.arange(count) % NUM_CLASSES)[torch.randperm(count, generator=generator)]
    base = prototypes[labels]  # (count, 1, *spatial)
    dims = base.dim() - 2
    theta = _affine(generator, count, dims)
    grid = affine_grid(theta, tuple(base.shape[2:]))
    moved = F.grid_sample(base, grid, mode="bilinear", padding_mode="border", align_corners=False)
    view = (count,) + (1,) * (dims + 1)
    contrast = _uniform(generator, view, *CONTRAST)
    brightness = _uniform(generator, view, *BRIGHTNESS)
    noise = torch.randn(moved.shape, generator=generator) * NOISE_STD
    inputs = (moved * contrast + brightness + noise).clamp_(0.0, 1.0)
    return inputs.contiguous(), labels.to(torch.int64)


def make(name: str, seed: int = 0, num_train: int | None = None, num_test: int | None = None) -> Splits:
    """Generate ``synthetic`` or ``synthetic3d`` for ``seed``."""
    shape, _, default_train, default_test = SHAPES[name]
    n_train = check_count(num_train, "num_train") or default_train
    n_test = check_count(num_test, "num_test") or default_test
    with single_thread():  # small memory-bound steps: see single_thread()
        prototypes = _prototypes(name, seed)
        train = _samples(name, seed, "train", n_train, prototypes)
        test = _samples(name, seed, "test", n_test, prototypes)
    return Splits(
        train=train,
        test=test,
        num_classes=NUM_CLASSES,
        classes=CLASSES,
        info={"dataset": name, "source": "generated in memory", "seed": int(seed),
              "input_shape": list(shape)},
    )


def load(name: str, data_dir: Any = None, seed: int = 0, **kwargs: Any) -> Splits:
    """Loader entry point: ``data_dir`` is unused; ``num_train``/``num_test`` set the sizes."""
    return make(name, seed=seed, num_train=kwargs.get("num_train"), num_test=kwargs.get("num_test"))
