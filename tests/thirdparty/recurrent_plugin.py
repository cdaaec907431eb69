"""Recurrent models for tests/test_flops_choice.py: an image's rows read as a sequence (1x28x28: 28 steps of
28 features), by a time-major LSTM and a batch-first bidirectional GRU, as a plugin author writes them.

torch.utils.flop_counter counted the LSTM as 0 (its CPU kernel has no formula) and the graph count left
both layers out, so the jobs' FLOPs were their Linear heads' alone.
"""

from torch import nn

from harness import ModelSpec, Recipe, hookimpl

RECIPE = Recipe(optimizer="adam", lr=1e-3, batch_size=32, epochs=1)


class RowsLSTM(nn.Module):
    def __init__(self, num_classes, input_shape, **kwargs):
        super().__init__()
        self.lstm = nn.LSTM(input_shape[-1], 16)  # time-major: (L, N, F)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):  # (N, 1, H, W)
        out, _ = self.lstm(x.flatten(1, 2).permute(1, 0, 2))
        return self.head(out[-1])


class RowsGRU(nn.Module):
    def __init__(self, num_classes, input_shape, **kwargs):
        super().__init__()
        self.gru = nn.GRU(input_shape[-1], 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        out, _ = self.gru(x.flatten(1, 2))
        return self.head(out[:, -1])


@hookimpl
def harness_models():
    return [ModelSpec("rows-lstm", RowsLSTM, "an LSTM over an image's rows", recipe=RECIPE),
            ModelSpec("rows-gru", RowsGRU, "a bidirectional GRU over an image's rows", recipe=RECIPE)]
