"""Seed 003: MNIST under 20k parameters, a reconstruction of the four models.

What the seed states
--------------------
- Enhanced (winning) model, 19,306 parameters: "Stage 1: 1->8->16->16
  channels; Stage 2: 16->22->30->30; Stage 3: 30->36->46->36; GAP +
  Dropout(0.05) + FC(36->10)".
- Baseline 17,758 ("original 3-stage"), Residual 19,282 ("skip
  connections"), Wide 19,881 ("wider channels"): totals only.
- Nothing about kernel sizes, BatchNorm, biases or pooling.

What was reconstructed (and why)
--------------------------------
Each stage of the enhanced model is read as three convolutions (1->8, 8->16,
16->16 in stage 1, and so on). A search over every choice of kernel size
(3x3 or 1x1), conv bias and BatchNorm per position, applied alike in the
three stages, has exactly one arrangement giving 19,306:

    stage = conv 3x3 (bias) + BN + ReLU, conv 1x1 (bias) + BN + ReLU,
            conv 1x1 (bias) + BN + ReLU

(two 3x3 convs per stage would already cost more than 20k at these widths).
Stages are joined by 2x2 max-pooling (28 -> 14 -> 7), 3x3 convs use
padding 1, and the head is global average pooling, dropout, linear. The conv
biases before BatchNorm are redundant but are what the count requires.

The other three keep this skeleton; their channels were tuned so the totals
match the seed exactly (searched over channel choices, preferring the fewest
changes from the enhanced model):

``mnist-baseline-20k`` (17,758 params)
    the same 3-stage network with narrower expanding convs and the same
    stage outputs: 1->6->16->16 | 16->18->30->30 | 30->34->44->36, FC 36->10.
``mnist-residual-20k`` (19,282 params)
    stage 1 as in the enhanced model (1->8->16->16; a skip from a
    single-channel input adds nothing); stages 2 and 3 are residual blocks,
    ``ReLU(main(x) + shortcut(x))`` where the main path is the 3x3, 1x1, 1x1
    convs (BatchNorm but no ReLU after the last) and the shortcut is a 1x1
    conv (no bias) + BN projection, since the channels change. To pay for the
    projections: 16->14->30->30 | 30->36->42->36, FC 36->10.
``mnist-wide-20k`` (19,881 params)
    wider and shallower: two convs per stage (3x3 + 1x1, each with bias, BN
    and ReLU) and a wider 3x3 conv in every stage than the enhanced model:
    1->16->20 | 20->24->29 | 29->44->44, FC 44->10. The seed's total is odd,
    which with bias + BN (3 extra parameters per channel) needs an odd width
    somewhere; 29 is the one odd channel count.

All four work on any input of at least 4x4 (two 2x2 pools then GAP). They
return raw logits; normalisation is applied by the harness from the recipe.
``dropout`` (default 0.05, the seed's sweet spot) is the head's dropout rate,
the parameter the seed's dropout sweep varies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Channel layouts: per stage, the widths of its convs (first 3x3, the rest 1x1).
ENHANCED = ((8, 16, 16), (22, 30, 30), (36, 46, 36))
BASELINE = ((6, 16, 16), (18, 30, 30), (34, 44, 36))
RESIDUAL = ((8, 16, 16), (14, 30, 30), (36, 42, 36))
WIDE = ((16, 20), (24, 29), (44, 44))

MIN_SIDE = 4  # two 2x2 max-pools must leave at least a 1x1 map


def conv_bn(cin: int, cout: int, kernel: int, relu: bool = True) -> nn.Sequential:
    """conv (with bias) + BatchNorm (+ ReLU); ``kernel`` 3 is padded to keep the size."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=True),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ConvStage(nn.Sequential):
    """A 3x3 conv then 1x1 convs, each conv + BN + ReLU; ``widths`` are the output channels."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        layers, cin = [], in_channels
        for i, cout in enumerate(widths):
            layers.append(conv_bn(cin, cout, 3 if i == 0 else 1))
            cin = cout
        super().__init__(*layers)


class ResidualStage(nn.Module):
    """``ReLU(main(x) + shortcut(x))``: main is a :class:`ConvStage` without its last ReLU;
    the shortcut is the identity, or a 1x1 conv + BN projection where the channels change."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers, cin = [], in_channels
        for i, cout in enumerate(widths):
            layers.append(conv_bn(cin, cout, 3 if i == 0 else 1, relu=i < len(widths) - 1))
            cin = cout
        self.main = nn.Sequential(*layers)
        out_channels = widths[-1]
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.main(x) + self.shortcut(x))


class ThreeStageNet(nn.Module):
    """stage 1, max-pool, stage 2, max-pool, stage 3, global average pool, dropout, linear."""

    def __init__(self, stages: Sequence[nn.Module], features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        s1, s2, s3 = stages
        self.features = nn.Sequential(s1, nn.MaxPool2d(2), s2, nn.MaxPool2d(2), s3)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(features, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _in_channels(name: str, input_shape: Sequence[int]) -> int:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape[1:]) < MIN_SIDE:
        raise ValueError(f"{name} needs inputs of shape (C, H, W) with H, W >= {MIN_SIDE}, got {shape}")
    return shape[0]


def plain_net(
    layout: Sequence[Sequence[int]], num_classes: int, in_channels: int, dropout: float
) -> ThreeStageNet:
    stages, cin = [], in_channels
    for widths in layout:
        stages.append(ConvStage(cin, widths))
        cin = widths[-1]
    return ThreeStageNet(stages, cin, num_classes, dropout)


def enhanced_20k(num_classes: int, input_shape: Sequence[int], dropout: float = 0.05) -> ThreeStageNet:
    return plain_net(ENHANCED, num_classes, _in_channels("mnist-enhanced-20k", input_shape), dropout)


def baseline_20k(num_classes: int, input_shape: Sequence[int], dropout: float = 0.05) -> ThreeStageNet:
    return plain_net(BASELINE, num_classes, _in_channels("mnist-baseline-20k", input_shape), dropout)


def wide_20k(num_classes: int, input_shape: Sequence[int], dropout: float = 0.05) -> ThreeStageNet:
    return plain_net(WIDE, num_classes, _in_channels("mnist-wide-20k", input_shape), dropout)


def residual_20k(num_classes: int, input_shape: Sequence[int], dropout: float = 0.05) -> ThreeStageNet:
    cin = _in_channels("mnist-residual-20k", input_shape)
    s1, s2, s3 = RESIDUAL
    stages = [ConvStage(cin, s1), ResidualStage(s1[-1], s2), ResidualStage(s2[-1], s3)]
    return ThreeStageNet(stages, s3[-1], num_classes, dropout)
