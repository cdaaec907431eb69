"""How long one dynamo ONNX export takes with the harness's reused op table, and with torch's own rebuild.

``torch.onnx.export(dynamo=True)`` builds its torchlib op table (``ONNXRegistry.from_torchlib``) on every
call; the harness builds it once per process for its own exports (``harness.export``). This script
exports one built-in model alternately both ways (ABBA order, after one warm-up export of each), in one
process, checks that the two files are byte for byte the same, and prints each side's median seconds per
export and the ratio.

Usage::

    python benchmarks/export_speed.py [--model mnist-cnn] [--rounds 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist-cnn", help="a registered model (default: mnist-cnn)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds, two exports each (default 4)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    import torch

    import harness.export as export
    from harness.registry import build_registry

    spec = build_registry().models.get(args.model)
    if spec is None:
        parser.error(f"unknown model {args.model!r}")
    shape = spec.model_input_shape((1, 28, 28))
    if shape is None:
        parser.error(f"{args.model} takes no 1x28x28 input")
    torch.manual_seed(0)
    model = spec.build(num_classes=10, input_shape=shape).eval()
    example = torch.rand(4, *shape)

    def once(reuse: bool, path: Path) -> float:
        if not reuse:
            export._TORCHLIB_REGISTRIES.clear()  # torch's own way: a table built for this export
        start = time.perf_counter()
        export.export_onnx(model, example, path, exporter="dynamo")
        return time.perf_counter() - start

    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        files = {reuse: Path(folder) / f"{'reused' if reuse else 'rebuilt'}.onnx" for reuse in (True, False)}
        for reuse in (False, True):  # warm-up: imports, tracing caches, the first table
            once(reuse, files[reuse])
        for index in range(args.rounds):
            order = (True, False) if index % 2 == 0 else (False, True)
            for reuse in order:
                seconds[reuse].append(once(reuse, files[reuse]))
        same = files[True].read_bytes() == files[False].read_bytes()
    reused, rebuilt = statistics.median(seconds[True]), statistics.median(seconds[False])
    result = {"model": args.model, "torch": torch.__version__, "rounds": args.rounds,
              "reused_s": [round(s, 4) for s in seconds[True]], "rebuilt_s": [round(s, 4) for s in seconds[False]],
              "median_reused_s": round(reused, 4), "median_rebuilt_s": round(rebuilt, 4),
              "speedup": round(rebuilt / reused, 3) if reused else None, "same_bytes": same}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model}, torch {torch.__version__}, {args.rounds} alternating rounds (median seconds per export)")
        print(f"  op table rebuilt per export (torch's way): {rebuilt:.3f} s")
        print(f"  op table reused (the harness):             {reused:.3f} s")
        print(f"  speed-up x{result['speedup']:.2f}; files byte for byte the same: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
