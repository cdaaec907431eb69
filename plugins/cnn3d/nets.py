"""Seed 004: 3D MNIST (16x16x16 voxel digits), a sequential 3D CNN against a ResNet-style 3D CNN.

The seed shows the two architectures only as images; the text gives the
filter progression, the BatchNorm placement and the dense sections. The
reconstruction:

``Sequential3DCNN`` (``cnn3d-sequential``), the widely copied Kaggle 3D MNIST layout
    conv3d 3x3x3 1->8, ReLU; conv3d 8->16, ReLU; max-pool 2;
    conv3d 16->32, ReLU; conv3d 32->64, ReLU; BatchNorm3d (the network's one
    BatchNorm, "at the end" of the conv part); max-pool 2; flatten;
    dense 2048, ReLU, dropout 0.4; dense 512, ReLU, dropout 0.4; dense 10.
    Convolutions are unpadded ("valid", Keras' default), so 16^3 -> 14 -> 12
    -> 6 -> 4 -> 2 -> 1 and the first dense layer sees 64 features. The
    Kaggle notebook puts the BatchNorm just after the second pool instead of
    just before it; the parameter count is the same either way. The dense head
    fixes the input at 16x16x16.

``ResNet3D`` (``cnn3d-resnet``)
    stem conv3d 3x3x3 1->16 + BN + ReLU; three residual stages of one basic
    block each at 16, 32, 64 channels (two 3x3x3 conv + BN, as in ResNet:
    a ReLU after the first BN, none after the second, one after the residual
    sum; identity skip, or a 1x1x1 conv + BN projection where the channels or
    the stride change; stages 2 and 3 halve the resolution:
    16^3 -> 16 -> 8 -> 4); global average pooling; then the "compact dense
    section 512 -> 128 -> 10", read like the sequential network's
    "2048 -> 512 -> 10" as the widths of the dense layers: 64 -> 512 -> 128
    -> 10 with ReLU and dropout 0.2 (the seed says this run had less dropout).
    Global pooling makes the input size free.

Recipe: the seed names no optimiser. Both use Adam lr 1e-3, batch 32,
15 epochs; the seed blames the ResNet run's instability on a higher learning
rate, so the default keeps the two runs on the same, lower rate. Voxels are
already in [0, 1]: no normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Sequential3DCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, 8, 3),
            nn.ReLU(inplace=True),
            nn.Conv3d(8, 16, 3),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.Conv3d(16, 32, 3),
            nn.ReLU(inplace=True),
            nn.Conv3d(32, 64, 3),
            nn.ReLU(inplace=True),
            nn.BatchNorm3d(64),
            nn.MaxPool3d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 2048),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(2048, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock3D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet3D(nn.Module):
    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64),
        dense: Sequence[int] = (512, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks = []
        width = widths[0]
        for index, out_channels in enumerate(widths):
            blocks.append(BasicBlock3D(width, out_channels, stride=1 if index == 0 else 2))
            width = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        layers: list[nn.Module] = [nn.Flatten()]
        for units in dense:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))))


def _check_volume(input_shape: Sequence[int]) -> None:
    if len(input_shape) != 4:
        raise ValueError(f"3D CNNs take volumes (C, D, H, W); got input_shape {tuple(input_shape)}")


def cnn3d_sequential(num_classes: int, input_shape: Sequence[int]) -> Sequential3DCNN:
    _check_volume(input_shape)
    if tuple(input_shape[1:]) != (16, 16, 16):
        raise ValueError(f"cnn3d-sequential's dense head takes 16x16x16 volumes; got {tuple(input_shape)}")
    return Sequential3DCNN(num_classes, in_channels=input_shape[0])


def cnn3d_resnet(num_classes: int, input_shape: Sequence[int]) -> ResNet3D:
    _check_volume(input_shape)
    return ResNet3D(num_classes, in_channels=input_shape[0])
