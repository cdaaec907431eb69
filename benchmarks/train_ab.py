"""Training speed of every built-in model with one training option off (A) and on (B), alternating.

``--option channels-last``: the default (contiguous) vs the channels-last memory
format, 2D models only; the measurement behind ``harness run``'s automatic
``--channels-last`` (on when training on the CPU; see
:func:`harness.train.resolve_channels_last`).

``--option bf16``: float32 vs ``--amp bf16`` autocast (CPU or CUDA), both sides
in the memory format ``harness run`` picks by default on the device; the
measurement behind ``--amp bf16`` being offered on the CPU (see
:func:`harness.train.resolve_amp`).

For each model that can take the dataset, both sides train the same initial
weights with the model's recipe for ``--epochs`` on the first ``--samples``
training images, alternating the order over ``--rounds`` (ABBA) so machine
drift hits both; the best time of each side is compared. The last column is
each side's final training loss: channels-last does the same arithmetic in
another order (the losses agree to a few digits), bf16 rounds the products
(they agree to about two).

    python benchmarks/train_ab.py --option channels-last --samples 1024 --rounds 2 --device cpu
    python benchmarks/train_ab.py --option bf16 --models mnist-cake-cnn,mnist-fast --device cpu

prints one line per model and the median ratio (> 1: B is faster).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

# option -> (label of A, label of B)
OPTIONS = {"channels-last": ("contiguous", "channels-last"), "bf16": ("float32", "bf16")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--option", choices=sorted(OPTIONS), default="channels-last",
                        help="the training option compared, off against on (default: channels-last)")
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
    from harness.train import (TrainOptions, cpu_has_native_bf16, input_adapter, resolve_channels_last, resolve_device,
                               train_model)

    registry = build_registry()
    splits = registry.get("datasets", args.dataset).load(data_dir=args.data_dir, seed=args.seed)
    x, y = splits.train[0][: args.samples], splits.train[1][: args.samples]
    if args.option == "channels-last" and x.dim() != 4:
        raise SystemExit(f"train_ab.py: {args.dataset} is not a 2D image dataset (channels-last applies to 2D)")
    names = args.models.split(",") if args.models else list(registry.specs["models"])
    device = resolve_device(args.device)
    default_channels_last = resolve_channels_last(None, device) and x.dim() == 4

    def options(on: bool) -> TrainOptions:
        if args.option == "channels-last":
            return TrainOptions(device=device, seed=args.seed, channels_last=on)
        return TrainOptions(device=device, seed=args.seed, channels_last=default_channels_last,
                            amp="bf16" if on else None)

    label_a, label_b = OPTIONS[args.option]
    header = f"{args.dataset}, {len(x)} samples, {args.epochs} epoch(s), {device}, best of {args.rounds} " \
             f"alternating round(s), {label_a} (A) vs {label_b} (B)"
    if args.option == "bf16":
        header += f", channels-last {'on' if default_channels_last else 'off'} on both sides"
        if device == "cpu":
            native = {True: "has", False: "lacks (emulated, expect it slower)", None: "may or may not have"}
            header += f"; this CPU {native[cpu_has_native_bf16()]} native bf16"
    print(header)
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
            for on in (False, True) if index % 2 == 0 else (True, False):
                model = input_adapter(copy.deepcopy(initial), x.shape[1:], model_shape, recipe.normalize)
                torch.manual_seed(args.seed)
                result = train_model(model, (x, y), recipe, options(on))
                seconds[on].append(result.seconds)
                loss[on] = result.history[-1]["train_loss"]
        a, b = min(seconds[False]), min(seconds[True])
        ratios.append(a / b)
        print(f"{name:28s} batch {recipe.batch_size:4d}   {label_a} {a:7.2f} s   {label_b} {b:7.2f} s   "
              f"ratio {a / b:5.2f}x   loss {loss[False]:.4f} / {loss[True]:.4f}", flush=True)
    if not ratios:
        raise SystemExit(f"train_ab.py: no model fits {args.dataset}")
    print(f"median ratio over {len(ratios)} model(s): {statistics.median(ratios):.2f}x "
          f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
