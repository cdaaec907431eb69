"""Does the harness add anything on top of ONNX Runtime? Harness p50 vs a bare ``InferenceSession.run`` loop.

One process, one ONNX file (a seed-like ~6k-parameter CNN exported here with
the TorchScript exporter, or ``--model PATH``), batch 1, 1 intra-op thread.
The two sides are measured alternately in several short rounds (ABBA order),
because on a shared machine two long measurements taken one after the other
can differ by tens of percent for reasons unrelated to either side. Printed:
each side's best round median (p50) and floor (min), the ratios, the
per-round ratios and whether the figure was stable.

Two harness figures are compared with the bare loop:

- ``harness (session.run)``: ``measure_onnx(..., iobinding=False)``, the very
  call the bare loop makes, so the ratio is the harness's own measurement
  overhead (target: within 5 %);
- ``harness (IOBinding)``: what ``harness bench`` reports by default, inputs
  bound once as OrtValues (usually a few microseconds faster than
  ``session.run``, which converts numpy inputs and outputs on every call).

Usage::

    python benchmarks/harness_overhead.py [--rounds 7] [--model FILE.onnx] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harness.environment import cpu_model
from harness.latency import LatencyConfig, compare_measurements, measure_onnx, timer_overhead_ns

ROUND_SECONDS = 0.3
ROUND_CONFIG = LatencyConfig(warmup_runs=50, min_runs=200, min_time_s=ROUND_SECONDS, max_time_s=5.0,
                             warmup_time_s=0.05)


def export_small_cnn(path: Path) -> int:
    """A ~6k-parameter CNN like the seeds' ultralight MNIST nets, exported with the TorchScript exporter."""
    import torch
    from torch import nn

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    ).eval()
    params = sum(p.numel() for p in model.parameters())
    torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return params


def bare_loop(path: Path) -> dict:
    """What a user would write: one session, one input, session.run in a loop, median of per-call times."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    feeds = {session.get_inputs()[0].name: x}
    for _ in range(50):
        session.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 200 or time.perf_counter() - start < ROUND_SECONDS:
        t0 = time.perf_counter_ns()
        session.run(None, feeds)
        times.append(time.perf_counter_ns() - t0)
    return {"p50_ms": statistics.median(times) / 1e6, "min_ms": min(times) / 1e6, "runs": len(times)}


def harness_measure(path: Path, iobinding: bool) -> dict:
    rows = measure_onnx(path, [1], [1], ["CPUExecutionProvider"], ROUND_CONFIG, iobinding=iobinding)
    return rows[0]



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per comparison (default 7)")
    parser.add_argument("--model", type=Path, help="an ONNX file with one float input of shape (N, 1, 28, 28)")
    parser.add_argument("--json", action="store_true", help="print the comparisons as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 2:  # one round has no spread to judge stability by
        parser.error("--rounds must be at least 2")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or Path(tmp) / "small_cnn.onnx"
        params = None if args.model else export_small_cnn(path)
        plain = compare_measurements(lambda: harness_measure(path, False), lambda: bare_loop(path),
                                     rounds=args.rounds, names=("harness (session.run)", "bare loop"))
        bound = compare_measurements(lambda: harness_measure(path, True), lambda: bare_loop(path),
                                     rounds=args.rounds, names=("harness (IOBinding)", "bare loop"))
    result = {
        "model": str(args.model) if args.model else f"small CNN, {params} parameters (TorchScript export)",
        "cpu": cpu_model(),
        "cores": __import__("os").cpu_count(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "timer_overhead_ns": timer_overhead_ns(),
        "round_seconds": ROUND_SECONDS,
        "same_call": plain,
        "harness_default": bound,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model: {result['model']}; batch 1, 1 thread, CPUExecutionProvider")
    print(f"cpu: {result['cpu']} ({result['cores']} cores); onnxruntime {result['onnxruntime']}; "
          f"timer overhead {result['timer_overhead_ns']:.0f} ns per call")
    for title, cmp in (("same call (measure_onnx iobinding=False vs bare session.run)", plain),
                       ("harness default (IOBinding) vs bare session.run", bound)):
        print(f"\n{title}, {cmp['rounds']} alternating rounds of ~{ROUND_SECONDS}s each side:")
        print(f"  {cmp['a']:<24} p50 {cmp['a_p50_ms'] * 1000:8.2f} us   min {cmp['a_min_ms'] * 1000:8.2f} us")
        print(f"  {cmp['b']:<24} p50 {cmp['b_p50_ms'] * 1000:8.2f} us   min {cmp['b_min_ms'] * 1000:8.2f} us")
        print(f"  ratio (best p50) {cmp['ratio']:.3f}   floors {cmp['ratio_min']:.3f}   "
              f"paired per-round median {cmp['ratio_paired_median']:.3f}   "
              f"per-round {min(cmp['ratio_rounds']):.3f}-{max(cmp['ratio_rounds']):.3f}   "
              f"{cmp['stability']}")
    within = abs(plain["ratio"] - 1.0) <= 0.05
    print(f"\nharness measurement overhead: {100 * (plain['ratio'] - 1):+.1f}% "
          f"({'within' if within else 'OUTSIDE'} the 5% target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
