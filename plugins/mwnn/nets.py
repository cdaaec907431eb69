"""Multi-Weight Neural Networks (seed 000) and the seed's ablation ladder.

The seed (an analysis of why MWNN reached 97.60 % on MNIST and 0 % on
ImageNet) fixes the configurations and the recipe but not the layers; this
module is the reconstruction, documented here so every choice can be checked.

Pathways
    The input is RGB (the harness duplicates grayscale to three channels). The
    *colour pathway* sees the three channels; the *luminance pathway* sees
    ``Y = 0.299 R + 0.587 G + 0.114 B`` computed inside the model (a fixed,
    non-trainable weighted sum, so the exported ONNX file takes the same RGB
    input). The coefficients sum to 1, so Y of the normalised input equals the
    normalised Y: the harness's ``(x - 0.5) / 0.5`` scaling commutes with it.

Stages
    Each pathway is a small ResNet: a 3x3 conv-BN-ReLU stem to
    ``base_channels``, then one stage per entry of ``channels`` with
    ``blocks[i]`` basic residual blocks (two 3x3 conv-BN, identity skip or a
    1x1 conv-BN projection when the shape changes); every stage after the
    first halves the resolution. ``mwnn-shallow`` is base 32, blocks [1, 1],
    channels [32, 64] with a stride-1 stem (28x28 -> 28 -> 14). ``mwnn-medium``
    is base 64, blocks [2, 2, 2], channels [32, 64, 128]; being the
    "ImageNet-style" configuration its stem has stride 2 (a 3x3 conv, no
    max-pool, so it still works at 28x28 and 32x32: 28 -> 14 -> 7 -> 4), which
    also keeps it cheap enough to train on a CPU.

Continuous integration
    Read as: after *every* stage the two pathways exchange information and
    then continue separately. Each exchange is a pair of learned 1x1
    cross-connections (conv + BatchNorm), gated by a learned per-channel scale:
    ``colour += g_c * BN(W_lc * lum)`` and ``lum += g_l * BN(W_cl * colour)``
    (both computed from the pre-exchange features). The gates start at 0.5 so
    the mixing is active from the first step and training can turn it up or
    down per channel. At the end both pathways are globally average-pooled,
    concatenated and classified by the MWNN head
    (dropout 0.2, linear to half the width, ReLU, dropout 0.2, linear). The
    seed names no dropout: the head, and its rate of 0.2, are this plugin's
    choice (every model but ``mwnn-resnet-baseline``, whose single linear layer
    has none).

Ablation ladder (the seed's "Progressive Testing Strategy")
    1. ``mwnn-resnet-baseline``: "standard ResNet-like architecture": the same
       stem and stages on RGB, global average pooling and a single linear
       layer, as torchvision's ResNet ends.
    2. ``mwnn-rgb-only``: "RGB-only MWNN": the MWNN colour pathway alone with
       the MWNN head; no luminance computation, no integration modules.
    3. ``mwnn-dual``: "RGB + simplified luminance": both pathways, run
       independently and fused only once, by concatenation before the head.
    4. ``mwnn-shallow`` (and ``mwnn-medium``): the full model, with an
       exchange after every stage.
    Each step adds one thing: the MWNN head, then the luminance pathway, then
    the continuous integration. The seed proposes the ladder to find out why
    the *medium* (ImageNet) configuration failed, so the four ladder builds
    take ``depth``: ``"shallow"`` (the default, the layout of the parameter
    counts and names above) or ``"medium"`` (base 64, blocks [2, 2, 2],
    channels [32, 64, 128], stride-2 stem, as ``mwnn-medium``); a sweep can
    vary it (``[sweep] depth = ["shallow", "medium"]``). ``mwnn-shallow`` at
    ``depth="medium"`` is the same network as ``mwnn-medium``.

Everything exports to ONNX with static control flow (at the opset the exporter picks); the adaptive
pooling makes the input size free.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class Luminance(nn.Module):
    """``Y = 0.299 R + 0.587 G + 0.114 B`` as a fixed weighted channel sum: (N, 3, H, W) -> (N, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=1, keepdim=True)


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 projection skip, ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Pathway(nn.Module):
    """One pathway: stem then stages of basic blocks; ``stages[i]`` can be run one at a time."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        blocks: Sequence[int],
        channels: Sequence[int],
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if len(blocks) != len(channels):
            raise ValueError(f"blocks {list(blocks)} and channels {list(channels)} differ in length")
        self.stem = conv_bn_relu(in_channels, base_channels, stride=stem_stride)
        stages = []
        width = base_channels
        for index, (count, out_channels) in enumerate(zip(blocks, channels, strict=True)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(width, out_channels, stride)]
            layers += [BasicBlock(out_channels, out_channels) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            width = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = width


def _conv1x1_bn(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))


class CrossIntegration(nn.Module):
    """Gated 1x1 cross-connections between the pathways; each then continues on its own."""

    def __init__(self, channels: int, gate_init: float = 0.5) -> None:
        super().__init__()
        self.lum_to_color = _conv1x1_bn(channels)
        self.color_to_lum = _conv1x1_bn(channels)
        self.color_gate = nn.Parameter(torch.full((1, channels, 1, 1), gate_init))
        self.lum_gate = nn.Parameter(torch.full((1, channels, 1, 1), gate_init))

    def forward(self, color: torch.Tensor, lum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new_color = color + self.color_gate * self.lum_to_color(lum)
        new_lum = lum + self.lum_gate * self.color_to_lum(color)
        return new_color, new_lum


def mwnn_head(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class MWNN(nn.Module):
    """Colour pathway, optional luminance pathway, optional exchange after every stage.

    ``integration``: ``"continuous"`` (exchange after every stage and fuse at the
    head), ``"late"`` (fuse once, at the head) or ``"none"`` (colour pathway
    only; needs ``luminance=False``).
    """

    def __init__(
        self,
        num_classes: int,
        base_channels: int,
        blocks: Sequence[int],
        channels: Sequence[int],
        stem_stride: int = 1,
        luminance: bool = True,
        integration: str = "continuous",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if integration not in ("continuous", "late", "none"):
            raise ValueError(f"unknown integration {integration!r}")
        if luminance == (integration == "none"):
            raise ValueError("integration 'none' means no luminance pathway, and only that")
        self.color = Pathway(3, base_channels, blocks, channels, stem_stride)
        width = self.color.out_channels
        self.luminance: Luminance | None = None
        self.lum: Pathway | None = None
        self.integrations = nn.ModuleList()
        if luminance:
            self.luminance = Luminance()
            self.lum = Pathway(1, base_channels, blocks, channels, stem_stride)
        if integration == "continuous":
            self.integrations = nn.ModuleList(CrossIntegration(c) for c in channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        fused = width * (2 if luminance else 1)
        self.head = mwnn_head(fused, width // 2, num_classes, dropout)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pooled colour and luminance features (``None`` without a luminance pathway)."""
        color = self.color.stem(x)
        if self.lum is None:
            for stage in self.color.stages:
                color = stage(color)
            return torch.flatten(self.pool(color), 1), None
        lum = self.lum.stem(self.luminance(x))
        stages = zip(self.color.stages, self.lum.stages, strict=True)
        for index, (color_stage, lum_stage) in enumerate(stages):
            color, lum = color_stage(color), lum_stage(lum)
            if len(self.integrations):
                color, lum = self.integrations[index](color, lum)
        return torch.flatten(self.pool(color), 1), torch.flatten(self.pool(lum), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        color, lum = self.features(x)
        fused = color if lum is None else torch.cat([color, lum], dim=1)
        return self.head(fused)


class ResNetBaseline(nn.Module):
    """The ladder's first rung: one ResNet-like pathway on RGB, global pooling, one linear layer."""

    def __init__(
        self,
        num_classes: int,
        base_channels: int,
        blocks: Sequence[int],
        channels: Sequence[int],
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.body = Pathway(3, base_channels, blocks, channels, stem_stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.body.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body.stem(x)
        for stage in self.body.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.pool(x), 1))


SHALLOW = {"base_channels": 32, "blocks": (1, 1), "channels": (32, 64), "stem_stride": 1}
MEDIUM = {"base_channels": 64, "blocks": (2, 2, 2), "channels": (32, 64, 128), "stem_stride": 2}


def _check_rgb(input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise ValueError(f"MWNN models take RGB images (3, H, W); got input_shape {tuple(input_shape)}")


LAYOUTS = {"shallow": SHALLOW, "medium": MEDIUM}
"""The layouts a ladder build's ``depth`` picks from (the seed's ``depth = 'shallow'`` / ``'medium'``)."""


def _layout(depth: str) -> dict:
    """The layout named ``depth``; a ValueError naming the allowed values for anything else."""
    if not isinstance(depth, str) or depth not in LAYOUTS:
        allowed = " or ".join(repr(name) for name in LAYOUTS)
        raise ValueError(f"MWNN depth must be {allowed}; got {depth!r}")
    return LAYOUTS[depth]


def mwnn_shallow(num_classes: int, input_shape: Sequence[int], *, depth: str = "shallow") -> MWNN:
    _check_rgb(input_shape)
    return MWNN(num_classes, **_layout(depth), luminance=True, integration="continuous")


def mwnn_medium(num_classes: int, input_shape: Sequence[int]) -> MWNN:
    _check_rgb(input_shape)
    return MWNN(num_classes, **MEDIUM, luminance=True, integration="continuous")


def mwnn_resnet_baseline(
    num_classes: int, input_shape: Sequence[int], *, depth: str = "shallow"
) -> ResNetBaseline:
    _check_rgb(input_shape)
    return ResNetBaseline(num_classes, **_layout(depth))


def mwnn_rgb_only(num_classes: int, input_shape: Sequence[int], *, depth: str = "shallow") -> MWNN:
    _check_rgb(input_shape)
    return MWNN(num_classes, **_layout(depth), luminance=False, integration="none")


def mwnn_dual(num_classes: int, input_shape: Sequence[int], *, depth: str = "shallow") -> MWNN:
    _check_rgb(input_shape)
    return MWNN(num_classes, **_layout(depth), luminance=True, integration="late")
