"""A speed-run recipe: MNIST to 99 % test accuracy in as little training time as possible.

``mnist-fast`` is our own model (not from a seed): a small BatchNorm CNN
trained with a one-cycle schedule, large batches and label smoothing, meant
for the GPU path (data resident on the device, no DataLoader). Its recipe's
``target_accuracy`` of 0.99 makes the run record the time at which the test
accuracy first reached 99 % (``train.time_to_target_s``).
"""

from __future__ import annotations

from harness import ModelSpec, Recipe, Schedule, hookimpl

# Two epochs of one-cycle at batch 384 and peak lr 0.4: of the recipes tried, the one with the fewest
# steps that ends every seed above 99 % with room to spare. Test accuracy after 2 epochs (real MNIST,
# CPU, seeds 0-4; eval accuracy is what the GPU run should see too, give or take a seed's noise):
#   batch 512, lr 0.2: 0.9900-0.9907 (seeds 0-2)   batch 512, lr 0.4: 0.9906-0.9924, mean 0.9916
#   batch 384, lr 0.4: 0.9918-0.9929, mean 0.9922   batch 256, lr 0.4: 0.9929-0.9933, mean 0.9931
# The previous recipe (batch 512, lr 0.2, 4 epochs) first reached 99 % after epoch 3, its 354th
# step; this one does after its 314th and last. Steps are what cost on a GPU when a step waits on
# kernel launches rather than arithmetic, as the 002 models' eager steps did on an H200 (about 3 ms
# each whatever the model's size: reports/example); this model's time there is still to be measured.
FAST_RECIPE = Recipe(
    optimizer="sgd",
    lr=0.4,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    batch_size=384,
    epochs=2,
    schedule=Schedule(kind="onecycle"),
    normalize=(0.1307, 0.3081),
    label_smoothing=0.1,
    target_accuracy=0.99,
    source="harness speed-run recipe (not a seed)",
)


def build_fast(num_classes: int, input_shape: tuple[int, ...], width: int = 32, **kwargs):
    from harness_plugins.fast.nets import FastCNN

    return FastCNN(num_classes=num_classes, in_channels=input_shape[0], width=width)


@hookimpl
def harness_models():
    return [
        ModelSpec(
            "mnist-fast",
            build_fast,
            "Speed-run CNN (conv 32-64-128 with BatchNorm, global max pool): 99 % MNIST in 2 epochs; "
            "one-cycle SGD, batch 384, 2 epochs",
            input_rank=3,
            input_channels=1,
            recipe=FAST_RECIPE,
            # No published figures: its 99 % is the recipe's target (timed as time to target), not a seed's
            # result, so it stays out of the published-figures table and results.csv's reference column.
            tags=("fast",),
        )
    ]
