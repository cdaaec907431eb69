"""What machine and software produced a run: recorded in ``results.json``."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
from harness.manager import package_version


def windows_machine_value(key: str, name: str) -> Any:
    """The value ``name`` of the Windows registry key ``HKEY_LOCAL_MACHINE\\key``; None elsewhere or when absent."""
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:  # type: ignore[attr-defined]
            return winreg.QueryValueEx(handle, name)[0]  # type: ignore[attr-defined]
    except (ImportError, OSError):
        return None


def cpu_model() -> str:
    """The processor's brand name ("Apple M3 Max", "Intel(R) Core(TM) i7-1185G7 ..."), which compare holds
    two runs' machines to: platform.processor() says only "arm" on every Apple Silicon Mac, so an M1
    baseline and an M3 candidate read as one machine. Else what platform says."""
    if sys.platform == "darwin":
        try:
            brand = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                   timeout=5, check=False).stdout.strip()
            if brand:
                return brand
        except (OSError, subprocess.SubprocessError):
            pass
    elif sys.platform == "win32":
        brand = str(windows_machine_value(r"HARDWARE\DESCRIPTION\System\CentralProcessor\0",
                                          "ProcessorNameString") or "").strip()
        if brand:
            return brand
    else:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()


def harness_source() -> tuple[str | None, bool | None]:
    """The commit the running harness was built from and whether its files differ from it (``dirty``).

    A git checkout (an editable install, a clone on ``PYTHONPATH``) is asked with ``git``; a ``pip install
    git+URL`` says its commit in ``direct_url.json`` (PEP 610). ``(None, None)`` for a release's wheel, or
    when ``git`` is missing: ``__version__`` alone then names the code.
    """
    root = Path(harness.__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=5)
            if commit.returncode == 0:
                # tracked files only: a run's own output folders inside the checkout are not the code's change
                dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, timeout=5)
                return commit.stdout.strip(), (bool(dirty.stdout.strip()) if dirty.returncode == 0 else None)
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        info = json.loads(metadata.distribution("harness").read_text("direct_url.json") or "{}")
        commit = (info.get("vcs_info") or {}).get("commit_id")
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        commit = None
    return (commit if isinstance(commit, str) else None), None


def collect_environment(device: str) -> dict[str, Any]:
    """Versions, CPU and GPU, threads and providers; heavy modules are imported here on purpose."""
    import onnx
    import onnxruntime
    import torch

    from harness.latency import timer_overhead_ns, usable_cores
    from harness.ort import usable_providers

    usable, unusable = usable_providers()
    commit, dirty = harness_source()
    env: dict[str, Any] = {
        "harness": harness.__version__,
        "harness_commit": commit,  # with "harness_dirty": the code's own changes since that commit
        "harness_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),  # the affinity and the CPU quota allow: a container may get fewer
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        # what else writes the figures and the file: the dynamo exporter, the arrays, the plugin host
        "onnxscript": package_version("onnxscript"),
        "numpy": package_version("numpy"),
        "pluggy": package_version("pluggy"),
        "onnxruntime_providers": list(usable),
        "onnxruntime_unusable_providers": unusable,
        "device": device,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "timer_overhead_ns": timer_overhead_ns(),
    }
    return env
