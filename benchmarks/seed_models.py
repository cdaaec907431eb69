"""Eager PyTorch vs ONNX Runtime, and int8 vs float32, for built-in seed models (batch 1, CPU).

For each model (built from the registry, untrained: latency and file size do
not depend on the weights' values), exported with the harness's exporter:

- eager PyTorch vs ONNX Runtime float32 at batch 1 on ``--threads`` threads;
- ``int8-dynamic`` and ``int8-static`` (calibrated on random inputs here:
  fine for latency and size; accuracy needs a trained model, see
  ``harness run --variants``) vs float32 in ONNX Runtime, with file sizes.

Every comparison alternates the two sides in short rounds
(:func:`harness.latency.compare_alternating`), so machine drift between time
windows cancels; each printed ratio says whether it was stable.

Usage::

    python benchmarks/seed_models.py [--models mnist-ultralight-cnn,mnist-enhanced-20k,mnist-cnn]
                                     [--threads 1] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from harness.environment import cpu_model

DEFAULT_MODELS = "mnist-ultralight-cnn,mnist-enhanced-20k,mnist-cnn"
INPUT_SHAPE = (1, 28, 28)


def measure_model(name: str, folder: Path, threads: int, rounds: int) -> dict:
    import torch

    from harness.export import export_onnx, onnx_bytes
    from harness.latency import ROUND, compare_alternating, onnx_call, torch_threads
    from harness.ort import input_feeds, make_session
    from harness.registry import build_registry
    from harness.train import count_parameters
    from harness.variants import build_int8_dynamic, build_int8_static

    spec = build_registry().models.get(name)
    if spec is None:
        return {"model": name, "error": "not in the registry"}
    shape = spec.model_input_shape(INPUT_SHAPE)
    torch.manual_seed(0)
    model = spec.build(num_classes=10, input_shape=shape).eval()
    fp32 = folder / f"{name}.onnx"
    exported = export_onnx(model, torch.rand(2, *shape), fp32)
    x = torch.rand(1, *shape)

    def ort_call(path: Path):
        session = make_session(path, "CPUExecutionProvider", threads=threads)
        feeds = input_feeds(session, 1)
        feeds[next(iter(feeds))] = x.numpy()
        return onnx_call(session, feeds, "CPUExecutionProvider")

    result = {"model": name, "params": count_parameters(model), "exporter": exported.exporter,
              "threads": threads, "fp32_bytes": onnx_bytes(fp32)}
    def eager_call() -> None:
        model(x)

    with torch_threads(threads), torch.inference_mode():
        eager = compare_alternating(eager_call, ort_call(fp32), rounds=rounds, config=ROUND,
                                    names=("eager", "onnxruntime"))
    result["eager_vs_ort"] = eager
    calib = torch.rand(128, *shape)
    for variant, build in (("int8-dynamic", build_int8_dynamic), ("int8-static", build_int8_static)):
        target = folder / f"{name}.{variant}.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                build(fp32, target, calib, 0)
            cmp = compare_alternating(ort_call(target), ort_call(fp32), rounds=rounds, config=ROUND,
                                      names=(variant, "fp32"))
            result[variant] = {"bytes": onnx_bytes(target), "vs_fp32": cmp}
        except Exception as exc:  # noqa: BLE001 - report and go on
            result[variant] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    import onnxruntime as ort

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            results.append(measure_model(name, Path(tmp), args.threads, args.rounds))
    header = {"cpu": cpu_model(), "cores": os.cpu_count(), "onnxruntime": ort.__version__}
    if args.json:
        print(json.dumps({**header, "models": results}, indent=2))
        return 0
    print(f"cpu: {header['cpu']} ({header['cores']} cores); onnxruntime {header['onnxruntime']}; batch 1, "
          f"{args.threads} thread(s); {args.rounds} alternating rounds per comparison; times are best round p50")
    for r in results:
        if "error" in r:
            print(f"\n{r['model']}: {r['error']}")
            continue
        e = r["eager_vs_ort"]
        print(f"\n{r['model']} ({r['params']:,} params, {r['exporter']} export, fp32 {r['fp32_bytes']:,} bytes)")
        print(f"  eager {e['a_p50_ms']:.4f} ms  vs  onnxruntime {e['b_p50_ms']:.4f} ms  -> ORT speed-up "
              f"x{e['ratio']:.2f} (floors x{e['ratio_min']:.2f}; {e['stability']})")
        for variant in ("int8-dynamic", "int8-static"):
            v = r[variant]
            if "error" in v:
                print(f"  {variant}: {v['error']}")
                continue
            c = v["vs_fp32"]
            print(f"  {variant:<12} {c['a_p50_ms']:.4f} ms vs fp32 {c['b_p50_ms']:.4f} ms -> ratio {c['ratio']:.2f} "
                  f"(floors {c['ratio_min']:.2f}; {c['stability']}); size {v['bytes']:,} bytes "
                  f"({v['bytes'] / r['fp32_bytes']:.0%} of fp32)")
    return 0



if __name__ == "__main__":
    sys.exit(main())
