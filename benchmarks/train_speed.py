"""Training speed: the seeds' data pipeline against the harness's loop, same model, same process.

The naive side is what the seed write-ups did: a map-style dataset that turns
one uint8 image at a time into a normalised float tensor (torchvision's
``ToTensor`` + ``Normalize``, and the recipe's augmentation per sample, as
their ``RandomRotation`` transform did), fed through a ``DataLoader`` with
per-sample collation, then moved to the device batch by batch. It follows the
whole recipe (schedule, one-cycle included, and label smoothing), so the two
sides differ only in how the data reaches the model. The harness side keeps the
whole split as one tensor on the device and shuffles by index
(:func:`harness.train.train_model`). Both train the same architecture with the
same recipe from the same initial weights for the same number of epochs; the
two sides alternate over ``--rounds`` so machine drift hits both.

    python benchmarks/train_speed.py --model mnist-ultralight-cnn --dataset mnist \
        --data-dir ~/data/mnist --epochs 1 --device auto

prints each side's seconds and test accuracy and the speed-up ratio.
``--configs`` measures several harness configurations against the same naive
run, e.g. ``--configs eager,cuda-graphs,bf16+cuda-graphs`` on a GPU (``+``
joins options: ``bf16``, ``fp16``, ``channels-last``, ``compile``,
``cuda-graphs``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path


def naive_train(model, train_x, train_y, recipe, device, seed):
    import math

    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from harness.train import augment_batch, make_batch_scheduler, make_optimizer

    mean, std = recipe.normalize or (0.0, 1.0)
    images = (train_x * 255).round().to(torch.uint8)  # what an IDX file holds
    augment_rng = torch.Generator().manual_seed(seed)

    class PerSample(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            x = images[i].float().div(255)  # ToTensor
            if recipe.augment:  # the seeds' per-sample transform (e.g. RandomRotation((-7, 7), fill=0))
                x = augment_batch(x[None], recipe.augment, augment_rng)[0]
            return (x - mean) / std, int(train_y[i])  # Normalize

    loader = DataLoader(PerSample(), batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model.to(device).train()
    optimizer = make_optimizer(recipe, model.parameters())
    # The same recipe as the harness side, schedule included.
    per_batch = make_batch_scheduler(recipe, optimizer, math.ceil(len(images) / recipe.batch_size))
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        if per_batch is None:
            for group in optimizer.param_groups:
                group["lr"] = recipe.schedule.lr_at(epoch, recipe.lr)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_batch is not None:
                per_batch.step()
            loss.item()  # the seeds logged the loss every batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def accuracy(model, x, y, device, normalize):
    from harness.train import predict

    mean, std = normalize or (0.0, 1.0)
    logits = predict(model, (x - mean) / std, device)
    return float((logits.argmax(1) == y).float().mean())


CONFIG_WORDS = ("eager", "bf16", "fp16", "channels-last", "compile", "cuda-graphs")


def config_options(config: str) -> dict:
    """TrainOptions keywords for a ``+``-joined configuration name."""
    words = set(config.split("+"))
    unknown = words - set(CONFIG_WORDS)
    if unknown:
        raise SystemExit(f"train_speed.py: unknown config word(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(CONFIG_WORDS)}")
    amp = "bf16" if "bf16" in words else "fp16" if "fp16" in words else None
    return {"amp": amp, "channels_last": "channels-last" in words, "compile": "compile" in words,
            "cuda_graphs": "cuda-graphs" in words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist-ultralight-cnn")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default="eager",
                        help="comma-separated harness configurations, e.g. eager,cuda-graphs,bf16+cuda-graphs")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for config in configs:
        config_options(config)  # fail on a typo before any training

    import torch

    from harness.registry import build_registry
    from harness.runner import _subset
    from harness.train import TrainOptions, resolve_device, train_model

    registry = build_registry()
    spec = registry.get("models", args.model)
    splits = registry.get("datasets", args.dataset).load(data_dir=args.data_dir, seed=args.seed)
    train_x, train_y = _subset(splits.train, args.max_train_samples, args.seed)
    recipe = spec.recipe.replace(epochs=args.epochs)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    initial = spec.build(num_classes=splits.num_classes, input_shape=tuple(train_x.shape[1:]))

    if device.startswith("cuda"):
        # Every round alike: cuDNN autotuning on for both sides (train_model turns it on for its training
        # and puts this value back), and CUDA's lazy start-up (context, cuBLAS/cuDNN handles) is paid here,
        # untimed, not inside the first naive round. The harness side also runs its untimed warm-up steps
        # (--warmup-steps, 2 on CUDA) each round; the naive side is as warm from its second round on, and
        # each side's best round is the one compared.
        torch.backends.cudnn.benchmark = True
        warm = copy.deepcopy(initial).to(device)
        warm(train_x[:recipe.batch_size].to(device)).sum().backward()
        torch.cuda.synchronize()
        del warm
    naive_times, naive_acc = [], []
    harness_times = {c: [] for c in configs}
    harness_acc = {c: [] for c in configs}
    graphs_note = {}
    from harness.train import input_adapter

    for _ in range(args.rounds):
        model = copy.deepcopy(initial)
        torch.manual_seed(args.seed)  # dropout draws from the global generator: same draws on every side
        naive_times.append(naive_train(model, train_x, train_y, recipe, device, args.seed))
        naive_acc.append(accuracy(model, *splits.test, device, recipe.normalize))
        for config in configs:
            model = input_adapter(copy.deepcopy(initial), train_x.shape[1:], train_x.shape[1:], recipe.normalize)
            options = TrainOptions(device=device, seed=args.seed, **config_options(config))
            torch.manual_seed(args.seed)
            result = train_model(model, (train_x, train_y), recipe, options)
            harness_times[config].append(result.seconds)
            harness_acc[config].append(accuracy(model, *splits.test, device, None))
            if result.cuda_graphs is not None:
                graphs_note[config] = result.cuda_graphs

    naive_s = min(naive_times)
    print(f"model {args.model} on {args.dataset} ({len(train_x)} samples, {args.epochs} epoch(s), {device}, "
          f"best of {args.rounds} alternating round(s))")
    print(f"naive DataLoader         : {naive_s:8.2f} s   test accuracy {statistics.mean(naive_acc):.4f}")
    for config in configs:
        harness_s = min(harness_times[config])
        note = ""
        if config in graphs_note:
            g = graphs_note[config]
            note = "  (CUDA graph used)" if g["used"] else f"  (no CUDA graph: {g['reason']})"
        print(f"harness {config:<17}: {harness_s:8.2f} s   test accuracy {statistics.mean(harness_acc[config]):.4f}"
              f"   speed-up {naive_s / harness_s:6.2f}x{note}")

if __name__ == "__main__":
    main()
