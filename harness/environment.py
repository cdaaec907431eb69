"""What machine and software produced a run: recorded in ``results.json``."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import harness


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment(device: str) -> dict[str, Any]:
    """Versions, CPU and GPU, threads and providers; heavy modules are imported here on purpose."""
    import onnx
    import onnxruntime
    import torch

    from harness.latency import timer_overhead_ns, usable_cores
    from harness.ort import usable_providers

    usable, unusable = usable_providers()
    env: dict[str, Any] = {
        "harness": harness.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),  # the affinity's: a container may get fewer than cpu_count
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": list(usable),
        "onnxruntime_unusable_providers": unusable,
        "device": device,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "timer_overhead_ns": timer_overhead_ns(),
    }
    return env
