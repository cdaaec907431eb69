"""Models whose export the harness must doubt or explain (tests/test_export_run.py).

``export-branchy`` branches on the input's values in Python; ``export-len`` makes a Python int of the batch
with ``len(x)``; ``export-cdist`` uses an operator the dynamo exporter lacks (torch 2.5 to 2.13), which a
trace records cleanly.
"""

import torch
from torch import nn

from harness import ModelSpec, Recipe, hookimpl

RECIPE = Recipe(optimizer="adam", lr=1e-3, batch_size=64, epochs=1)


class Branchy(nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), num_classes))

    def forward(self, x):
        if x.mean() > 1000:  # no input takes it: a trace holds the other branch only
            return -self.body(x)
        return self.body(x)


class LenBatch(Branchy):
    def forward(self, x):
        return self.body[1](x.reshape(len(x), -1))


class Cdist(Branchy):
    def forward(self, x):
        y = self.body(x)
        return y + torch.cdist(y.unsqueeze(1), y.unsqueeze(1)).squeeze(1) * 0


@hookimpl
def harness_models():
    return [ModelSpec(name, cls, f"export doubts: {name}", recipe=RECIPE)
            for name, cls in (("export-branchy", Branchy), ("export-len", LenBatch), ("export-cdist", Cdist))]
