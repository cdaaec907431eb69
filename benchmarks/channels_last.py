"""Training speed of every built-in 2D model in the default (contiguous) and channels-last memory formats.

The measurement behind ``harness run``'s automatic ``--channels-last`` (on when
training on the CPU; see :func:`harness.train.resolve_channels_last`). For each
model that can take the dataset, both formats train the same initial weights
with the model's recipe for ``--epochs`` on the first ``--samples`` training
images, alternating the order over ``--rounds`` (ABBA) so machine drift hits
both; the best time of each side is compared. The last column is each side's
final training loss: the two formats do the same arithmetic in another order,
so they agree to a few digits.

    python benchmarks/channels_last.py --samples 1024 --rounds 2 --device cpu

prints one line per model and the median ratio (> 1: channels-last is faster).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated model names (default: every model that fits the dataset)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--samples", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from harness.registry import build_registry
    from harness.train import TrainOptions, input_adapter, resolve_device, train_model

    registry = build_registry()
    splits = registry.get("datasets", args.dataset).load(data_dir=args.data_dir, seed=args.seed)
    x, y = splits.train[0][: args.samples], splits.train[1][: args.samples]
    if x.dim() != 4:
        raise SystemExit(f"channels_last.py: {args.dataset} is not a 2D image dataset (channels-last applies to 2D)")
    names = args.models.split(",") if args.models else list(registry.specs["models"])
    device = resolve_device(args.device)
    print(f"{args.dataset}, {len(x)} samples, {args.epochs} epoch(s), {device}, best of {args.rounds} "
          f"alternating round(s)")
    ratios = []
    for name in names:
        spec = registry.get("models", name)
        model_shape = spec.model_input_shape(tuple(x.shape[1:]))
        if model_shape is None:
            continue
        torch.manual_seed(args.seed)
        initial = spec.build(num_classes=splits.num_classes, input_shape=model_shape)
        recipe = spec.recipe.replace(epochs=args.epochs)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        loss: dict[bool, float] = {}
        for index in range(args.rounds):
            for channels_last in (False, True) if index % 2 == 0 else (True, False):
                model = input_adapter(copy.deepcopy(initial), x.shape[1:], model_shape, recipe.normalize)
                torch.manual_seed(args.seed)
                result = train_model(model, (x, y), recipe,
                                     TrainOptions(device=device, seed=args.seed, channels_last=channels_last))
                seconds[channels_last].append(result.seconds)
                loss[channels_last] = result.history[-1]["train_loss"]
        plain, last = min(seconds[False]), min(seconds[True])
        ratios.append(plain / last)
        print(f"{name:28s} batch {recipe.batch_size:4d}   contiguous {plain:7.2f} s   channels-last {last:7.2f} s   "
              f"ratio {plain / last:5.2f}x   loss {loss[False]:.4f} / {loss[True]:.4f}", flush=True)
    if not ratios:
        raise SystemExit(f"channels_last.py: no model fits {args.dataset}")
    print(f"median ratio over {len(ratios)} model(s): {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
