"""torch modules the core wraps around plugin models (imported only when a job runs)."""

from __future__ import annotations

import torch
from torch import nn


class InputAdapter(nn.Module):
    """Adapts dataset inputs to what a model expects, inside the exported graph.

    - 1 -> 3 channels: grayscale duplicated to RGB (the seeds' way);
      3 -> 1: the channel mean.
    - ``normalize=(mean, std)``: ``(x - mean) / std`` on [0, 1] inputs.

    It holds no parameters, so parameter counts are the wrapped model's.
    """

    def __init__(self, model: nn.Module, data_channels: int, model_channels: int,
                 normalize: tuple[float, float] | None = None):
        super().__init__()
        self.model = model
        self.data_channels = data_channels
        self.model_channels = model_channels
        self.normalize = normalize is not None
        mean, std = normalize if normalize is not None else (0.0, 1.0)
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("inv_std", torch.tensor(1.0 / float(std)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data_channels == 1 and self.model_channels == 3:
            x = torch.cat([x, x, x], dim=1)
        elif self.data_channels == 3 and self.model_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        if self.normalize:
            x = (x - self.mean) * self.inv_std
        return self.model(x)
