"""The speed-run network: three conv blocks, each conv -> BatchNorm -> GELU, pooling between."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class GlobalMaxPool(nn.Module):
    """(N, C, H, W) -> (N, C, 1, 1), the maximum over each channel: ``nn.AdaptiveMaxPool2d(1)``
    written as ``amax``, which both ONNX exporters of every supported torch can write (torch 2.11's
    dynamo exporter has no ``adaptive_max_pool2d``, so each job fell back to a TorchScript trace)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


class FastCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width),
            nn.MaxPool2d(2),
            _block(width, 2 * width),
            nn.MaxPool2d(2),
            _block(2 * width, 4 * width),
            GlobalMaxPool(),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A fixed temperature keeps logits small early in one-cycle training.
        return self.head(self.features(x)) / 4.0
