"""Seed 002: three MNIST CNNs with exact per-layer tables (rough, cake, ultra-light).

The seed gives every layer with its kernel, padding and parameter count; the
networks below follow those tables exactly. What the tables leave open, and
what was chosen:

``RoughCNN`` (``mnist-rough-cnn``, Setup-1 / Setup-1-Run2): 6,379,786 params
    conv 3x3 1->32 p1, conv 32->64 p1, max-pool 2, conv 64->128 p1,
    conv 128->256 p1, max-pool 2, conv 256->512 p0, conv 512->1024 p0,
    conv 1024->10 p0. Every conv has a bias (the table's 320 = 9*32 + 32).
    At 28x28: 28 -> 28 -> 14 -> 14 -> 14 -> 7 -> 5 -> 3 -> 1, so the last
    conv leaves a 10x1x1 map that is flattened to the logits ("direct
    conv-to-class mapping"). The table lists bare ``Conv2d`` rows; a ReLU
    follows each conv but the last (without them the net would be linear).
    The seed says BatchNorm and dropout were removed: none here.

``CakeCNN`` (``mnist-cake-cnn``, Setup-2): 388,582 params
    7 x (conv 3x3 p1 + ReLU) with 1-16-16-16 | pool | 16-32-32 | pool |
    32-64-64, then flatten (64*7*7 = 3136), FC 3136->100, ReLU, FC 100->10.
    The convs are bias-free (the table's 144 = 9*16) and the FC layers have
    biases (313,700 = 3136*100 + 100); this reproduces the seed's total
    exactly. (The seed's breakdown rows "74,872" / "313,710" are typos for
    73,872 / 314,710; the total 388,582 agrees with the layer rows.) The ReLU
    between the two FC layers is assumed (the table lists bare ``Linear``
    rows).

``UltraLightCNN`` (``mnist-ultralight-cnn``, Setup-3): 6,008 params
    conv 3x3 p1 + ReLU 1-10-10-10 | pool | 10-8-8 | pool | conv p0 8-8-8
    (7 -> 5 -> 3), flatten (8*3*3 = 72), FC 72->20, ReLU, FC 20->10.
    Bias-free convs (90 = 9*10), FC layers with bias (1,460 = 72*20 + 20).

BatchNorm and dropout (Setup-2 and Setup-3)
    The seed's changelog says both were added ("Fixed NaN loss issue with
    proper LR and BN"; "Implement proper BatchNorm throughout" and "Add
    dropout for regularization" ticked as completed), but the layer tables
    list neither. The parameter totals rule out only *affine* BatchNorm (its
    weight and bias would add parameters the totals do not have); a
    non-affine BatchNorm and dropout add none, so the counts cannot decide.
    The choice follows the tables: the cake and ultra-light CNNs have no
    BatchNorm and no dropout.

Inconsistencies in the seed, and how they were read
    * Setup-2's breakdown rows "74,872" / "313,710": typos for 73,872 /
      314,710 (see ``CakeCNN`` above).
    * "Model Size 24.3MB | 1.48MB | 0.45MB" mixes two measures. 24.3 and 1.48
      are the float32 weights in MiB (6,379,786 and 388,582 x 4 bytes); 0.45
      is not: 6,008 weights are 0.023 MiB. It is torchsummary's "Estimated
      Total Size" for a 1x28x28 input (parameters + 2 x every layer's output
      + the input: 0.023 + 0.430 + 0.003 = about 0.46 MiB here). On the same
      measure the other two would be about 27.2 and 2.4 MiB. The reference
      keeps the seed's 0.45 as published (see ``harness_plugins.mnist_cnns``).

All three have fully connected heads (or a final conv sized for a 3x3 map),
so they need exactly 28x28 inputs. They return raw logits; normalisation is
applied by the harness from the recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

MNIST_SPATIAL = (28, 28)


def _check_input(name: str, input_shape: Sequence[int]) -> int:
    """The input channel count; a clear error when the spatial size is not 28x28."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[1:] != MNIST_SPATIAL:
        raise ValueError(f"{name} needs inputs of shape (C, 28, 28), got {shape}")
    return shape[0]


def _conv_relu(cin: int, cout: int, padding: int, bias: bool) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=padding, bias=bias), nn.ReLU(inplace=True)]


class RoughCNN(nn.Module):
    """Seed 002 Setup-1: seven convs 1->32->64->128->256->512->1024->10, ending in a 1x1 map."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(in_channels, 32, 1, True),  # 28x28
            *_conv_relu(32, 64, 1, True),  # 28x28
            nn.MaxPool2d(2),  # 14x14
            *_conv_relu(64, 128, 1, True),
            *_conv_relu(128, 256, 1, True),
            nn.MaxPool2d(2),  # 7x7
            *_conv_relu(256, 512, 0, True),  # 5x5
            *_conv_relu(512, 1024, 0, True),  # 3x3
            nn.Conv2d(1024, num_classes, 3, padding=0, bias=True),  # 1x1, no ReLU: these are the logits
        )
        self.flatten = nn.Flatten()

    def forward(self, x):
        return self.flatten(self.features(x))


class CakeCNN(nn.Module):
    """Seed 002 Setup-2: bias-free conv 16-16-16 | 32-32 | 64-64, FC 3136->100->classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(in_channels, 16, 1, False),
            *_conv_relu(16, 16, 1, False),
            *_conv_relu(16, 16, 1, False),
            nn.MaxPool2d(2),  # 14x14
            *_conv_relu(16, 32, 1, False),
            *_conv_relu(32, 32, 1, False),
            nn.MaxPool2d(2),  # 7x7
            *_conv_relu(32, 64, 1, False),
            *_conv_relu(64, 64, 1, False),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 100),
            nn.ReLU(inplace=True),
            nn.Linear(100, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class UltraLightCNN(nn.Module):
    """Seed 002 Setup-3: bias-free conv 10-10-10 | 8-8 | 8-8 (unpadded), FC 72->20->classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_relu(in_channels, 10, 1, False),
            *_conv_relu(10, 10, 1, False),
            *_conv_relu(10, 10, 1, False),
            nn.MaxPool2d(2),  # 14x14
            *_conv_relu(10, 8, 1, False),
            *_conv_relu(8, 8, 1, False),
            nn.MaxPool2d(2),  # 7x7
            *_conv_relu(8, 8, 0, False),  # 5x5
            *_conv_relu(8, 8, 0, False),  # 3x3
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * 3 * 3, 20),
            nn.ReLU(inplace=True),
            nn.Linear(20, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def rough_cnn(num_classes: int, input_shape: Sequence[int]) -> RoughCNN:
    return RoughCNN(num_classes, _check_input("mnist-rough-cnn", input_shape))


def cake_cnn(num_classes: int, input_shape: Sequence[int]) -> CakeCNN:
    return CakeCNN(num_classes, _check_input("mnist-cake-cnn", input_shape))


def ultralight_cnn(num_classes: int, input_shape: Sequence[int]) -> UltraLightCNN:
    return UltraLightCNN(num_classes, _check_input("mnist-ultralight-cnn", input_shape))
