"""Training speed: the seeds' data pipeline against the harness's loop, same model, same process.

The naive side is what the seed write-ups did: a map-style dataset that turns
one uint8 image at a time into a normalised float tensor (torchvision's
``ToTensor`` + ``Normalize``), fed through a ``DataLoader`` with per-sample
collation, then moved to the device batch by batch. The harness side keeps the
whole split as one tensor on the device and shuffles by index
(:func:`harness.train.train_model`). Both train the same architecture with the
same recipe from the same initial weights for the same number of epochs; the
two sides alternate over ``--rounds`` so machine drift hits both.

    python benchmarks/train_speed.py --model mnist-ultralight-cnn --dataset mnist \
        --data-dir ~/data/mnist --epochs 1 --device auto

prints each side's seconds and test accuracy and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path


def naive_train(model, train_x, train_y, recipe, device, seed):
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from harness.train import make_optimizer

    mean, std = recipe.normalize or (0.0, 1.0)
    images = (train_x * 255).round().to(torch.uint8)  # what an IDX file holds

    class PerSample(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            x = images[i].float().div(255)  # ToTensor
            return (x - mean) / std, int(train_y[i])  # Normalize

    loader = DataLoader(PerSample(), batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model.to(device).train()
    optimizer = make_optimizer(recipe, model.parameters())
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = recipe.schedule.lr_at(epoch, recipe.lr)
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the seeds logged the loss every batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def accuracy(model, x, y, device, normalize):
    from harness.train import predict

    mean, std = normalize or (0.0, 1.0)
    logits = predict(model, (x - mean) / std, device)
    return float((logits.argmax(1) == y).float().mean())


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
    args = parser.parse_args()

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

    naive_times, harness_times, naive_acc, harness_acc = [], [], [], []
    for _ in range(args.rounds):
        model = copy.deepcopy(initial)
        naive_times.append(naive_train(model, train_x, train_y, recipe, device, args.seed))
        naive_acc.append(accuracy(model, *splits.test, device, recipe.normalize))

        from harness.train import input_adapter

        model = input_adapter(copy.deepcopy(initial), train_x.shape[1:], train_x.shape[1:], recipe.normalize)
        result = train_model(model, (train_x, train_y), recipe, TrainOptions(device=device, seed=args.seed))
        harness_times.append(result.seconds)
        harness_acc.append(accuracy(model, *splits.test, device, None))

    naive_s, harness_s = min(naive_times), min(harness_times)
    print(f"model {args.model} on {args.dataset} ({len(train_x)} samples, {args.epochs} epoch(s), {device}, "
          f"best of {args.rounds} alternating round(s))")
    print(f"naive DataLoader : {naive_s:8.2f} s   test accuracy {statistics.mean(naive_acc):.4f}")
    print(f"harness loop     : {harness_s:8.2f} s   test accuracy {statistics.mean(harness_acc):.4f}")
    print(f"speed-up         : {naive_s / harness_s:8.2f}x")


if __name__ == "__main__":
    main()
