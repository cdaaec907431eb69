"""What identifies a run's data and software: split digests, and compare naming a difference in them."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from harness.compare import compare_runs, format_comparison
from harness.specs import Splits, tensor_digest

RUNS = Path(__file__).parent / "fixtures" / "compare"


def _splits(order=None) -> Splits:
    import torch

    x = torch.arange(40, dtype=torch.float32).reshape(10, 1, 2, 2)
    y = torch.arange(10) % 3
    test = (x, y) if order is None else (x[order], y[order])
    return Splits(train=(x, y), test=test, num_classes=3)


def test_a_split_with_the_same_samples_in_another_order_digests_differently():
    import torch

    same, again = _splits().digests(), _splits().digests()
    shuffled = _splits(order=torch.arange(9, -1, -1)).digests()
    assert same == again and set(same) == {"train", "test"}
    assert shuffled["train"] == same["train"] and shuffled["test"] != same["test"]
    with_val = _splits()
    with_val = Splits(train=with_val.train, test=with_val.test, num_classes=3, val=with_val.test)
    assert with_val.digests()["val"] == same["test"]


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "bool"])
def test_tensor_digest_is_the_dataset_caches_stored_checksum(dtype):
    """The cache's entries written before hold this formula's digests: they must still validate."""
    import torch

    tensor = (torch.arange(24).reshape(2, 3, 4) % 5).to(getattr(torch, dtype))
    old = hashlib.sha256(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    old.update(memoryview(tensor.contiguous().numpy().reshape(-1).view("uint8")))
    assert tensor_digest(tensor) == old.hexdigest()
    assert tensor_digest(tensor[:, :0]) == hashlib.sha256(f"{tensor.dtype}|(2, 0, 4)|".encode()).hexdigest()


def _with_data(document: dict, test_digest: str) -> dict:
    document = copy.deepcopy(document)
    for job in document["jobs"]:
        job["data_sha256"] = {"train": "a" * 64, "test": test_digest}
    return document


def test_compare_names_other_data_and_other_libraries_as_settings_that_differ():
    """The same options over a test split in another order moved accuracy 1.8 points, called a code regression."""
    base = json.loads((RUNS / "base" / "results.json").read_text())
    new = _with_data(base, "c" * 64)
    base = _with_data(base, "b" * 64)
    new["environment"] = {**base["environment"], "numpy": "2.4.6", "harness_commit": "f" * 40}
    base["environment"] = {**base["environment"], "numpy": "1.26.4", "harness_commit": None}
    comparison = compare_runs(base, new)
    differ = {d["what"]: d for d in comparison["settings_differ"]}
    assert differ["data"]["base"] == "test sha256 bbbbbbbbbbbb" and differ["data"]["new"] == "test sha256 cccccccccccc"
    assert "jobs" not in differ["data"]  # every compared job's data differs
    assert (differ["numpy"]["base"], differ["numpy"]["new"]) == ("1.26.4", "2.4.6")
    text = format_comparison(comparison)
    assert "data test sha256 bbbbbbbbbbbb -> test sha256 cccccccccccc" in text
    assert f"harness_commit none -> {'f' * 40}" in text
    older = copy.deepcopy(base)  # a run from before the digests: nothing to say
    for job in older["jobs"]:
        del job["data_sha256"]
    assert "data" not in {d["what"] for d in compare_runs(older, new)["settings_differ"]}
    assert "data" not in {d["what"] for d in compare_runs(base, copy.deepcopy(base))["settings_differ"]}


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="stands a shell script in for macOS's sysctl")
def test_a_macs_cpu_is_its_brand_name_so_compare_tells_an_m1_from_an_m3(tmp_path, monkeypatch):
    """platform.processor() answers "arm" on every Apple Silicon Mac: compare saw one machine in two."""
    import os
    import sys

    from harness import environment

    sysctl = tmp_path / "sysctl"
    sysctl.write_text('#!/bin/sh\n[ "$2" = machdep.cpu.brand_string ] && echo "Apple M3 Max"\n')
    sysctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert environment.cpu_model() == "Apple M3 Max"
    sysctl.write_text("#!/bin/sh\nexit 1\n")  # no answer: what platform says, as before
    assert environment.cpu_model() == (environment.platform.processor() or environment.platform.machine())
