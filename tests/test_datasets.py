"""Tests of the built-in dataset plugins (``harness_plugins.datasets``).

All run offline on CPU in seconds: every test gets its own cache folder
(``HARNESS_CACHE_DIR``) and ``HARNESS_OFFLINE=1``, and file-based datasets are
exercised on tiny IDX / CIFAR / HDF5 files written here. Real data is used
only where it exists: MNIST from ``$HARNESS_TEST_MNIST_DIR`` (or the shared
development copy next to the repository) and Fashion-MNIST from the Debian
package folder; those tests skip, saying why, elsewhere.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import harness_plugins.datasets as datasets
from harness import DatasetSpec, Splits
from harness.errors import DataUnavailableError, HarnessError
from harness_plugins.datasets import cache as dataset_cache
from harness_plugins.datasets import cifar, idx, synthetic, voxel
from harness_plugins.datasets import mnist as mnist_module

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPECTED = {
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "mnist3d": (1, 16, 16, 16),
    "synthetic": (1, 28, 28),
    "synthetic3d": (1, 16, 16, 16),
}
FASHION_SYSTEM_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _real_mnist_dir() -> pathlib.Path | None:
    configured = os.environ.get("HARNESS_TEST_MNIST_DIR")
    candidates = [pathlib.Path(configured)] if configured else []
    candidates += [REPO.parent / "shared" / "data" / "mnist", REPO / "shared" / "data" / "mnist"]
    for folder in candidates:
        if any((folder / f"train-images-idx3-ubyte{suffix}").is_file() for suffix in ("", ".gz")):
            return folder
    return None


REAL_MNIST = _real_mnist_dir()
needs_real_mnist = pytest.mark.skipif(
    REAL_MNIST is None, reason="no real MNIST: set HARNESS_TEST_MNIST_DIR to a folder with the IDX files"
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A private cache folder and no downloads, for every test."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    return cache_dir


@pytest.fixture
def no_system_fashion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the Debian Fashion-MNIST package is not installed."""
    bare = dataclasses.replace(mnist_module.FASHION_MNIST, system_dirs=())
    monkeypatch.setitem(mnist_module.IDX_DATASETS, "fashion-mnist", bare)
    monkeypatch.setattr(mnist_module, "FASHION_MNIST", bare)
    monkeypatch.setattr(voxel, "FASHION_MNIST", bare)


def spec(name: str) -> DatasetSpec:
    return {s.name: s for s in datasets.harness_datasets()}[name]


# --------------------------------------------------------------------------- tiny IDX files


def write_idx(path: pathlib.Path, array: np.ndarray, gz: bool) -> pathlib.Path:
    """Write ``array`` (uint8) as an IDX file, gzipped when ``gz`` (the name gets ``.gz``)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_idx_set(folder: pathlib.Path, *, gz: bool = True, seed: int = 0, n_train: int = 24, n_test: int = 12,
                 train_labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A tiny, valid MNIST-style IDX set in ``folder``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8) if train_labels is None
        else np.asarray(train_labels, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for role, names in idx.IDX_FILES.items():
        write_idx(folder / names[0], arrays[role], gz)
    return arrays


def check_splits(splits: Splits, shape: tuple[int, ...], n_train: int | None = None,
                 n_test: int | None = None) -> None:
    assert isinstance(splits, Splits)
    assert splits.num_classes == 10
    for x, y in (splits.train, splits.test):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == shape
        assert x.shape[0] == y.shape[0] > 0
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert int(y.min()) >= 0 and int(y.max()) < 10
    assert splits.input_shape == shape
    if n_train is not None:
        assert splits.train[0].shape[0] == n_train
    if n_test is not None:
        assert splits.test[0].shape[0] == n_test


# --------------------------------------------------------------------------- the plugin module


def test_plugin_module_imports_and_lists_without_torch() -> None:
    code = (
        "import sys, harness_plugins.datasets as d; specs = d.harness_datasets(); "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "print(','.join(s.name for s in specs))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(",") == list(EXPECTED)


def test_specs_declare_names_shapes_and_classes() -> None:
    specs = datasets.harness_datasets()
    assert [s.name for s in specs] == list(EXPECTED)
    for s in specs:
        assert isinstance(s, DatasetSpec)
        assert s.input_shape == EXPECTED[s.name]
        assert s.num_classes == 10
        assert s.description and callable(s.load)
    assert "Fashion-MNIST" in spec("mnist3d").description


# --------------------------------------------------------------------------- synthetic data


@pytest.mark.parametrize("name, n_train, n_test", [("synthetic", 2048, 512), ("synthetic3d", 1024, 256)])
def test_synthetic_shapes_ranges_and_balance(name: str, n_train: int, n_test: int) -> None:
    splits = spec(name).load(data_dir=None, seed=0)
    check_splits(splits, EXPECTED[name], n_train, n_test)
    assert torch.bincount(splits.train[1], minlength=10).tolist() == [n_train // 10 + (i < n_train % 10)
                                                                     for i in range(10)]
    assert splits.train[0].std() > 0.1  # not a constant image


@pytest.mark.parametrize("name", ["synthetic", "synthetic3d"])
def test_synthetic_is_deterministic_and_seed_sensitive(name: str, tmp_path: pathlib.Path) -> None:
    load = spec(name).load
    first = load(data_dir=tmp_path, seed=7)
    again = load(data_dir=None, seed=7, some_unknown_option=True)
    other = load(data_dir=tmp_path, seed=8)
    for a, b in ((first.train, again.train), (first.test, again.test)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(first.train[0], other.train[0])
    assert not torch.equal(first.test[0], other.test[0])
    # Sizes are keyword arguments; the test split does not depend on the training size.
    small = load(data_dir=None, seed=7, num_train=100, num_test=30)
    assert small.train[0].shape[0] == 100 and small.test[0].shape[0] == 30
    assert torch.equal(load(data_dir=None, seed=7, num_train=100).test[0], first.test[0])


@pytest.mark.parametrize("name", ["synthetic", "synthetic3d"])
def test_synthetic_is_fast(name: str) -> None:
    spec(name).load(data_dir=None, seed=0)  # warm up torch kernels
    start = time.perf_counter()
    spec(name).load(data_dir=None, seed=1)
    # The brief is < 0.5 s; the bound is loose because CI machines are shared.
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("name", ["synthetic", "synthetic3d"])
def test_small_mlp_learns_synthetic_in_one_epoch(name: str) -> None:
    splits = spec(name).load(data_dir=None, seed=0)
    (x, y), (x_test, y_test) = splits.train, splits.test
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(x))
    for start in range(0, len(x), 64):
        batch = order[start:start + 64]
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.5, f"{name}: test accuracy {accuracy:.3f} after one epoch"


def test_synthetic_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="num_train"):
        spec("synthetic").load(data_dir=None, seed=0, num_train=0)


# --------------------------------------------------------------------------- IDX reading


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw", "raw"], ids=["root", "mnist", "MNIST-raw", "raw"])  # raw: torchvision's MNIST/ given itself
def test_mnist_reads_idx_files(tmp_path: pathlib.Path, gz: bool, layout: str) -> None:
    data_dir = tmp_path / "data"
    arrays = make_idx_set(data_dir / layout if layout else data_dir, gz=gz)
    splits = spec("mnist").load(data_dir=data_dir, seed=0)
    check_splits(splits, (1, 28, 28), 24, 12)
    expected = torch.from_numpy(arrays["train_x"]).float().div(255).unsqueeze(1)
    assert torch.equal(splits.train[0], expected)
    assert splits.train[1].tolist() == arrays["train_y"].tolist()
    assert splits.test[1].tolist() == arrays["test_y"].tolist()
    assert splits.classes == tuple("0123456789")
    assert splits.info["origin"] == "data_dir"
    assert pathlib.Path(splits.info["source"]) == (data_dir / layout if layout else data_dir)


def test_a_download_that_a_run_reads_is_marked_used(isolated_environment: pathlib.Path) -> None:
    """harness cache --clear --older-than must not delete the downloaded files a run still reads (the decoded
    entry is keyed on their times, which therefore stay as they are): the folder gets a .last-used mark."""
    from harness.cache import USED_MARK, cache_items, removable

    download = isolated_environment / "datasets" / "mnist" / "download"
    make_idx_set(download / "MNIST" / "raw")
    month_ago = time.time() - 40 * 86400
    for path in download.rglob("*"):
        os.utime(path, (month_ago, month_ago))
    stamps = {path: path.stat().st_mtime for path in download.rglob("*.gz")}
    splits = spec("mnist").load(data_dir=None, seed=0)
    assert splits.info["origin"] == "download" and (download / USED_MARK).is_file()
    assert {path: path.stat().st_mtime for path in download.rglob("*.gz")} == stamps  # the sources untouched
    items = cache_items(["mnist"])
    assert [i.kind for i in items if i.path == str(download)] == ["download"]
    assert not [i for i in removable(items, older_than_days=30, downloads=True) if i.kind == "download"]


def test_mnist_accepts_str_data_dir_and_limits(tmp_path: pathlib.Path) -> None:
    arrays = make_idx_set(tmp_path, gz=False)
    splits = spec("mnist").load(data_dir=str(tmp_path), seed=3, num_train=5, num_test=4, unknown="x")
    check_splits(splits, (1, 28, 28), 5, 4)
    assert splits.train[1].tolist() == arrays["train_y"][:5].tolist()


def _truncate(path: pathlib.Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage", ["truncated-plain", "truncated-gz", "bad-magic", "count-mismatch", "over-long"]
)
def test_corrupt_idx_is_rejected_naming_the_file(tmp_path: pathlib.Path, damage: str) -> None:
    gz = damage == "truncated-gz"
    make_idx_set(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = tmp_path / f"train-images-idx3-ubyte{suffix}"
    labels = tmp_path / f"t10k-labels-idx1-ubyte{suffix}"
    culprit = images
    if damage in ("truncated-plain", "truncated-gz"):
        _truncate(images, images.stat().st_size - 100)
    elif damage == "bad-magic":
        data = bytearray(images.read_bytes())
        data[2] = 0x0D  # float data instead of unsigned bytes
        images.write_bytes(bytes(data))
    elif damage == "over-long":
        images.write_bytes(images.read_bytes() + b"\0" * 10)
    else:  # labels for fewer images than there are
        write_idx(labels, np.zeros(5, dtype=np.uint8), gz=False)
        culprit = labels
    with pytest.raises(DataUnavailableError) as caught:
        spec("mnist").load(data_dir=tmp_path, seed=0)
    message = str(caught.value)
    assert str(culprit) in message
    assert "\n" not in message


def test_a_gzipped_idx_file_is_decompressed_no_further_than_its_header_says(tmp_path: pathlib.Path) -> None:
    """A 300 KB gzip of one 28x28 image and 300 MiB of zeros after it took 600 MiB of memory to refuse: it was
    decompressed whole before its length was checked against its header."""
    import tracemalloc

    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(struct.pack(">IIII", 0x0803, 1, 28, 28) + b"\0" * 784)
        for _ in range(300):
            handle.write(b"\0" * (1 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DataUnavailableError, match=r"over-long IDX file .*: header says 1x28x28 \(800 bytes\), "
                                                       r"file has more"):
            idx.read_idx(bomb, ndim=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak
    fine = write_idx(tmp_path / "fine", np.arange(8, dtype=np.uint8).reshape(2, 2, 2), gz=True)
    assert idx.read_idx(fine, ndim=3).tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    plain = write_idx(tmp_path / "plain", np.zeros((1, 28, 28), dtype=np.uint8), gz=False)
    plain.write_bytes(plain.read_bytes() + b"\0" * 10)  # read whole: its length is said
    with pytest.raises(DataUnavailableError, match=r"\(800 bytes\), file has 810 bytes"):
        idx.read_idx(plain, ndim=3)


def test_read_idx_checks_dimensions(tmp_path: pathlib.Path) -> None:
    path = write_idx(tmp_path / "labels", np.arange(7, dtype=np.uint8), gz=False)
    assert idx.read_idx(path, ndim=1).tolist() == list(range(7))
    with pytest.raises(DataUnavailableError, match="magic number"):
        idx.read_idx(path, ndim=3)


# --------------------------------------------------------------------------- missing data


def _assert_helpful_one_liner(message: str, name: str) -> None:
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{name}:")
    assert "--data-dir" in message
    assert "download" in message and "network" in message
    assert "HARNESS_OFFLINE" in message  # the reason the download failed


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "mnist3d"])
def test_missing_data_raises_one_line_error(tmp_path: pathlib.Path, name: str,
                                            no_system_fashion: None) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataUnavailableError) as caught:
        spec(name).load(data_dir=empty, seed=0)
    assert isinstance(caught.value, HarnessError)
    _assert_helpful_one_liner(str(caught.value), name)
    assert str(empty) in str(caught.value)
    if name == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in str(caught.value)


def test_missing_data_without_data_dir(no_system_fashion: None) -> None:
    with pytest.raises(DataUnavailableError) as caught:
        spec("mnist").load(data_dir=None, seed=0)
    _assert_helpful_one_liner(str(caught.value), "mnist")
    assert "no --data-dir given" in str(caught.value)


def test_a_run_without_data_dir_passes_a_path_and_the_loaders_read_the_default_as_not_given(
        tmp_path: pathlib.Path, no_system_fashion: None) -> None:
    # CONTRACT.md: load gets data_dir: pathlib.Path, so a plugin may write data_dir / "x" without --data-dir
    from harness.cache import default_data_dir
    from harness.runner import DatasetCache

    given = []

    def load(data_dir, seed, **kwargs):
        given.append(data_dir)
        return synthetic.load("synthetic", data_dir=data_dir, seed=seed, num_train=64, num_test=32)

    DatasetCache(None, 0).get(DatasetSpec("recorder", load))
    assert given == [default_data_dir()] and isinstance(given[0], pathlib.Path)
    assert default_data_dir() == tmp_path / "cache" / "data"
    with pytest.raises(DataUnavailableError, match="no --data-dir given"):  # as with None: it does not exist
        spec("mnist").load(data_dir=default_data_dir(), seed=0)


def test_missing_data_reports_broken_torchvision(tmp_path: pathlib.Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_OFFLINE")
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DataUnavailableError) as caught:
        spec("mnist").load(data_dir=tmp_path, seed=0)
    message = str(caught.value)
    assert "torchvision is unavailable" in message and "\n" not in message
    assert "--data-dir" in message and "network" in message


def test_a_torchvision_built_for_another_torch_is_named_with_the_fix(tmp_path: pathlib.Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def mismatched(name, *args, **kwargs):  # what a CUDA torchvision wheel beside torch's CPU build raises
        if name.startswith("torchvision"):
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv("HARNESS_OFFLINE")
    monkeypatch.setattr(builtins, "__import__", mismatched)
    with pytest.raises(DataUnavailableError) as caught:
        spec("mnist").load(data_dir=tmp_path, seed=0)
    message = str(caught.value)
    assert "torchvision was built for another torch" in message and "install both from one index" in message
    assert message.count("torchvision was built for another torch") == 1  # it was said twice
    assert "\n" not in message


def test_partial_idx_set_is_pointed_out(tmp_path: pathlib.Path) -> None:
    make_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataUnavailableError, match="lacks t10k-labels-idx1-ubyte"):
        spec("mnist").load(data_dir=tmp_path, seed=0)


# --------------------------------------------------------------------------- the cache


def _cache_entries(cache_dir: pathlib.Path, name: str) -> list[pathlib.Path]:
    return sorted((cache_dir / "datasets" / name).glob("*.pt"))


@pytest.mark.parametrize("corruption", ["truncate", "flip-data-byte", "garbage", "empty"])
def test_corrupt_cache_is_detected_and_rebuilt(tmp_path: pathlib.Path, isolated_environment: pathlib.Path,
                                               caplog: pytest.LogCaptureFixture, corruption: str) -> None:
    data_dir = tmp_path / "data"
    arrays = make_idx_set(data_dir)
    first = spec("mnist").load(data_dir=data_dir, seed=0)
    assert first.info["cache"] == "miss"
    second = spec("mnist").load(data_dir=data_dir, seed=0)
    assert second.info["cache"] == "hit"
    assert torch.equal(first.train[0], second.train[0]) and torch.equal(first.test[1], second.test[1])
    (entry,) = _cache_entries(isolated_environment, "mnist")

    data = bytearray(entry.read_bytes())
    if corruption == "truncate":
        data = data[: len(data) // 2]
    elif corruption == "flip-data-byte":
        offset = bytes(data).find(arrays["train_x"].tobytes()[:256])
        assert offset > 0, "the image bytes should be stored verbatim"
        data[offset + 100] ^= 0xFF
    elif corruption == "garbage":
        data = bytearray(b"not a torch file" * 10)
    else:
        data = bytearray()
    entry.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="harness_plugins.datasets"):
        third = spec("mnist").load(data_dir=data_dir, seed=0)
    assert third.info["cache"] == "miss"
    assert any("rebuilding" in record.getMessage() for record in caplog.records)
    for a, b in ((first.train, third.train), (first.test, third.test)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    fourth = spec("mnist").load(data_dir=data_dir, seed=0)
    assert fourth.info["cache"] == "hit"
    assert not list(entry.parent.glob("*.tmp")), "temporary files must not be left behind"


def test_a_cache_entry_another_process_holds_is_read_around_not_deleted(
        tmp_path: pathlib.Path, isolated_environment: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows a sharing violation (a worker replacing the entry, an antivirus scan) is a PermissionError:
    it counted as a damaged entry, which was deleted."""
    data_dir = tmp_path / "data"
    make_idx_set(data_dir)
    spec("mnist").load(data_dir=data_dir, seed=0)
    (entry,) = _cache_entries(isolated_environment, "mnist")
    stored = entry.read_bytes()

    def held(*args, **kwargs):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(torch, "load", held)
    assert dataset_cache._read(entry, "any key") is None
    assert entry.read_bytes() == stored


def test_cache_key_depends_on_the_source(tmp_path: pathlib.Path, isolated_environment: pathlib.Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    arrays_one, arrays_two = make_idx_set(one, seed=1), make_idx_set(two, seed=2)
    load = spec("mnist").load
    assert load(data_dir=one, seed=0).train[1].tolist() == arrays_one["train_y"].tolist()
    assert load(data_dir=two, seed=0).train[1].tolist() == arrays_two["train_y"].tolist()
    assert load(data_dir=one, seed=0).train[1].tolist() == arrays_one["train_y"].tolist()
    assert len(_cache_entries(isolated_environment, "mnist")) == 2
    # Replacing a source file in place (new size/mtime) invalidates its entry too.
    arrays_new = make_idx_set(one, seed=3, n_train=30)
    assert load(data_dir=one, seed=0).train[1].tolist() == arrays_new["train_y"].tolist()


def test_stale_key_in_entry_is_rejected(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    key = {"dataset": "unit", "n": 1}
    tensors = {"a": torch.arange(5, dtype=torch.uint8)}
    got, info = dataset_cache.cached("unit", key, lambda: tensors)
    assert info["cache"] == "miss"
    # An entry whose stored key differs (a hash collision, a copied file) must not be used.
    other = dataset_cache.entry_path("unit", {"dataset": "unit", "n": 2})
    other.write_bytes(dataset_cache.entry_path("unit", key).read_bytes())
    with caplog.at_level(logging.WARNING):
        got, info = dataset_cache.cached("unit", {"dataset": "unit", "n": 2}, lambda: {"a": torch.zeros(1)})
    assert info["cache"] == "miss" and torch.equal(got["a"], torch.zeros(1))
    assert "key does not match" in caplog.text


def test_unwritable_cache_still_returns_data(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(blocker))
    make_idx_set(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        splits = spec("mnist").load(data_dir=tmp_path / "data", seed=0)
    check_splits(splits, (1, 28, 28), 24, 12)
    assert splits.info["cache"] == "unwritable"
    assert "continuing without the cache" in caplog.text


# --------------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.skipif(not (FASHION_SYSTEM_DIR / "train-labels-idx1-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package(tmp_path: pathlib.Path) -> None:
    splits = spec("fashion-mnist").load(data_dir=tmp_path, seed=0)
    check_splits(splits, (1, 28, 28), 60000, 10000)
    assert splits.info["origin"] == "system"
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"
    assert torch.bincount(splits.test[1]).tolist() == [1000] * 10
    assert abs(splits.train[0].mean().item() - 0.2860) < 0.001


def test_fashion_mnist_skips_a_folder_holding_mnist(tmp_path: pathlib.Path, no_system_fashion: None) -> None:
    mnist_labels = np.array(mnist_module.MNIST.fingerprint + (0, 1, 2, 3), dtype=np.uint8)
    make_idx_set(tmp_path, n_train=len(mnist_labels), train_labels=mnist_labels)
    assert spec("mnist").load(data_dir=tmp_path, seed=0).train[1].shape[0] == len(mnist_labels)
    with pytest.raises(DataUnavailableError, match="holds MNIST, not Fashion-MNIST"):
        spec("fashion-mnist").load(data_dir=tmp_path, seed=0)
    # ... but takes Fashion-MNIST from the conventional subfolder of the same --data-dir.
    arrays = make_idx_set(tmp_path / "fashion-mnist", seed=5)
    splits = spec("fashion-mnist").load(data_dir=tmp_path, seed=0)
    assert splits.train[1].tolist() == arrays["train_y"].tolist()


# --------------------------------------------------------------------------- real MNIST


@needs_real_mnist
def test_real_mnist_has_the_canonical_figures() -> None:
    splits = spec("mnist").load(data_dir=REAL_MNIST, seed=0)
    check_splits(splits, (1, 28, 28), 60000, 10000)
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.bincount(splits.train[1]).tolist() == train_counts
    assert torch.bincount(splits.test[1]).tolist() == test_counts
    assert abs(splits.train[0].mean().item() - 0.1307) < 0.0005
    assert spec("mnist").load(data_dir=REAL_MNIST, seed=0).info["cache"] == "hit"


@pytest.mark.slow
@needs_real_mnist
def test_real_mnist3d_voxelises_quickly() -> None:
    start = time.perf_counter()
    splits = spec("mnist3d").load(data_dir=REAL_MNIST, seed=0)
    elapsed = time.perf_counter() - start
    check_splits(splits, (1, 16, 16, 16), 60000, 10000)
    assert splits.info["source"] == "mnist"
    assert elapsed < 30, f"voxelising MNIST took {elapsed:.1f} s"


# --------------------------------------------------------------------------- mnist3d


def test_mnist3d_voxelises_mnist_deterministically(tmp_path: pathlib.Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    arrays = make_idx_set(data_dir / "mnist")
    load = spec("mnist3d").load
    first = load(data_dir=data_dir, seed=0)
    check_splits(first, (1, 16, 16, 16), 24, 12)
    assert first.info["source"] == "mnist" and first.info["cache"] == "miss"
    assert first.train[1].tolist() == arrays["train_y"].tolist()
    cached = load(data_dir=data_dir, seed=0)
    assert cached.info["cache"] == "hit"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "fresh-cache"))
    fresh = load(data_dir=data_dir, seed=0)
    assert fresh.info["cache"] == "miss"
    for other in (cached, fresh):
        assert torch.equal(first.train[0], other.train[0]) and torch.equal(first.test[0], other.test[0])
    reseeded = load(data_dir=data_dir, seed=1)
    assert not torch.equal(first.train[0], reseeded.train[0])
    assert reseeded.train[1].tolist() == first.train[1].tolist()


def test_mnist3d_looks_for_the_mnist_files_once_per_load(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness_plugins.datasets import mnist as mnist_module
    from harness_plugins.datasets import voxel

    make_idx_set(tmp_path / "mnist")
    calls = []
    real = mnist_module.locate

    def counting(dataset, data_dir):
        calls.append(dataset.name)
        return real(dataset, data_dir)

    monkeypatch.setattr(mnist_module, "locate", counting)
    monkeypatch.setattr(voxel, "locate", counting)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    assert spec("mnist3d").load(data_dir=tmp_path, seed=0).info["cache"] == "miss"
    assert calls == ["mnist"]  # found once, then passed down to the voxeliser and the IDX reader


def test_mnist3d_falls_back_to_fashion_mnist(tmp_path: pathlib.Path) -> None:
    arrays = make_idx_set(tmp_path / "fashion-mnist", seed=4)
    splits = spec("mnist3d").load(data_dir=tmp_path, seed=0)
    check_splits(splits, (1, 16, 16, 16), 24, 12)
    assert splits.info["source"] == "fashion-mnist"
    assert "mnist: no MNIST IDX files" in splits.info["mnist_unavailable"]
    assert splits.classes[0] == "T-shirt/top"
    assert splits.train[1].tolist() == arrays["train_y"].tolist()


def test_mnist3d_does_not_swap_corrupt_mnist_for_fashion_mnist(tmp_path: pathlib.Path) -> None:
    make_idx_set(tmp_path / "fashion-mnist", seed=4)  # there to fall back on, if the loader wrongly did
    make_idx_set(tmp_path / "mnist")
    (images,) = (tmp_path / "mnist").glob(idx.IDX_FILES["train_x"][0] + "*")
    images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])  # truncated
    with pytest.raises(DataUnavailableError, match=idx.IDX_FILES["train_x"][0]):
        spec("mnist3d").load(data_dir=tmp_path, seed=0)


def test_voxelise_geometry_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.zeros((5, 28, 28), dtype=torch.uint8)
    images[1] = 255  # a full white square: a slab across the whole volume
    images[2, 4:24, 12:16] = 255  # a vertical bar
    threads = torch.get_num_threads()
    volumes = voxel.voxelise(images, seed=0)
    assert torch.get_num_threads() == threads, "the thread setting must be restored"
    assert volumes.shape == (5, 16, 16, 16) and volumes.dtype == torch.uint8
    assert volumes[0].sum() == 0 and volumes[3].sum() == 0  # blank in, blank out
    slab = volumes[1].float() / 255
    depth_profile = slab[:, 6:10, 6:10].mean(dim=(1, 2))  # centre column, along depth
    assert depth_profile[7:9].min() > 0.9 and depth_profile[[0, 15]].max() < 0.1  # thick in the middle only
    bar = volumes[2].float().amax(dim=0)  # project along depth
    assert bar[3:13, 6:10].mean() > 3 * bar[:, :4].mean()  # the bar stays where it was, roughly
    # Results do not depend on how the work is chunked.
    monkeypatch.setattr(voxel, "CHUNK", 2)
    assert torch.equal(voxel.voxelise(images, seed=0), volumes)
    assert not torch.equal(voxel.voxelise(images, seed=1), volumes)


def _write_h5_placeholder(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / voxel.H5_NAME
    path.write_bytes(b"\x89HDF\r\n\x1a\n placeholder")
    return path


def test_mnist3d_without_h5py_voxelises_instead(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    _write_h5_placeholder(tmp_path)
    make_idx_set(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with caplog.at_level(logging.WARNING):
        splits = spec("mnist3d").load(data_dir=tmp_path, seed=0)
    assert splits.info["source"] == "mnist"
    assert "h5py is not installed" in splits.info["h5_skipped"]
    assert "h5py" in caplog.text


def test_mnist3d_reads_the_kaggle_h5_file(tmp_path: pathlib.Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py is an optional dependency")
    rng = np.random.default_rng(0)
    x_train = rng.random((6, 4096), dtype=np.float32) * 1.2  # a few values above 1 get clipped
    y_train = np.arange(6) % 10
    x_test, y_test = rng.random((3, 4096), dtype=np.float32), np.array([7, 8, 9])
    (tmp_path / "mnist3d").mkdir()
    with h5py.File(tmp_path / "mnist3d" / voxel.H5_NAME, "w") as handle:
        arrays = {"X_train": x_train, "y_train": y_train, "X_test": x_test, "y_test": y_test}
        for key, value in arrays.items():
            handle[key] = value
    splits = spec("mnist3d").load(data_dir=tmp_path, seed=0)
    check_splits(splits, (1, 16, 16, 16), 6, 3)
    assert splits.info["source"] == voxel.H5_NAME
    assert splits.test[1].tolist() == [7, 8, 9]
    assert torch.equal(splits.train[0].reshape(6, -1), torch.from_numpy(np.clip(x_train, 0, 1)))


def test_mnist3d_h5_shapes_are_checked_before_reading_and_only_the_rows_used_are_read(tmp_path: pathlib.Path) -> None:
    """A 35 KB file declaring a 30 GiB X_train was read whole before its shape was looked at; a file's data
    kept in another (external) file could read any local file into training data."""
    import tracemalloc

    h5py = pytest.importorskip("h5py", reason="h5py is an optional dependency")
    (tmp_path / "mnist3d").mkdir()
    path = tmp_path / "mnist3d" / voxel.H5_NAME
    with h5py.File(path, "w") as handle:  # 1 GiB declared, a few KB on disk (chunked, never written)
        handle.create_dataset("X_train", shape=(65_536, 4096), dtype=np.float32, chunks=(64, 4096))
        handle["y_train"] = np.zeros(65_536, dtype=np.int64)
        handle["X_test"], handle["y_test"] = np.zeros((2, 4096), dtype=np.float32), np.array([1, 2])
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        splits = spec("mnist3d").load(data_dir=tmp_path, seed=0, num_train=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(splits.train[0]) == 4 and peak < 64 * 2**20, peak
    with h5py.File(path, "w") as handle:
        handle["X_train"], handle["y_train"] = np.zeros((3, 100), dtype=np.float32), np.zeros(3, dtype=np.int64)
        handle["X_test"], handle["y_test"] = np.zeros((2, 4096), dtype=np.float32), np.array([1, 2])
    with pytest.raises(DataUnavailableError, match=r"has X_train \(3, 100\) and y_train \(3,\), expected"):
        spec("mnist3d").load(data_dir=tmp_path, seed=0)
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.zeros((3, 4096), dtype=np.float32).tobytes())
    with h5py.File(path, "w") as handle:
        handle.create_dataset("X_train", shape=(3, 4096), dtype=np.float32, external=[(str(outside), 0, h5py.h5f.UNLIMITED)])
        handle["y_train"] = np.zeros(3, dtype=np.int64)
        handle["X_test"], handle["y_test"] = np.zeros((2, 4096), dtype=np.float32), np.array([1, 2])
    with pytest.raises(DataUnavailableError, match="stores X_train or y_train in other files"):
        spec("mnist3d").load(data_dir=tmp_path, seed=0)


# --------------------------------------------------------------------------- CIFAR-10


def make_cifar(folder: pathlib.Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Fake CIFAR-10 python batches in the official layout (protocol 2, bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, :1024] = 200  # red plane
        data[:, 2048:] = 10  # blue plane
        batch_labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as handle:
            batch = {b"batch_label": name.encode(), b"data": data, b"labels": batch_labels}
            pickle.dump(batch, handle, protocol=2)
        images.append(data)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize("point_at", ["folder", "parent"])
def test_cifar10_reads_python_batches(tmp_path: pathlib.Path, point_at: str) -> None:
    folder = tmp_path / cifar.FOLDER
    images, labels = make_cifar(folder)
    splits = spec("cifar10").load(data_dir=folder if point_at == "folder" else tmp_path, seed=0)
    check_splits(splits, (3, 32, 32), 20, 4)
    assert splits.train[1].tolist() == labels[:20].tolist()
    assert torch.allclose(splits.train[0][:, 0], torch.tensor(200 / 255))  # channel 0 is red
    assert torch.allclose(splits.train[0][:, 2], torch.tensor(10 / 255))
    expected = torch.from_numpy(images[20:].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.equal(splits.test[0], expected)
    assert splits.classes[0] == "airplane"
    assert spec("cifar10").load(data_dir=tmp_path, seed=0).info["cache"] == "hit"


class _Exploit:
    """A pickle payload that would create a folder when unpickled by plain pickle."""

    def __init__(self, target: pathlib.Path):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_cifar10_refuses_pickles_with_code(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    target = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": _Exploit(target), b"labels": []}, handle, protocol=2)
    with pytest.raises(DataUnavailableError, match="refusing global") as caught:
        spec("cifar10").load(data_dir=tmp_path, seed=0)
    assert str(folder / "data_batch_3") in str(caught.value)
    assert not target.exists()


def test_cifar10_truncated_batch_is_named(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    _truncate(folder / cifar.TEST_BATCH, 200)
    with pytest.raises(DataUnavailableError) as caught:
        spec("cifar10").load(data_dir=tmp_path, seed=0)
    assert str(folder / cifar.TEST_BATCH) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("labels, needle", [([1, 2, 12, 3], "labels outside 0-9 (from 1 to 12)"),
                                            ([1, 2, 3], "labels of shape (3,) for 4 images, expected (4,)"),
                                            ([0.5, 1.7, 3.2, 9.9], "labels are float64, expected integers"),
                                            ([True, False, True, True], "labels are bool, expected integers")])
def test_cifar10_bad_labels_say_what_is_wrong(tmp_path: pathlib.Path, labels: list[int], needle: str) -> None:
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    with open(folder / cifar.TEST_BATCH, "wb") as handle:
        pickle.dump({b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": labels}, handle, protocol=2)
    with pytest.raises(DataUnavailableError, match=re.escape(needle)):
        spec("cifar10").load(data_dir=tmp_path, seed=0)


def test_cifar10_reads_a_protocol_2_batch_with_an_empty_byte_string_and_a_column_of_labels(
        tmp_path: pathlib.Path) -> None:
    """Protocol 2 writes b"" as a call to bytes(): such a valid batch was refused as corrupt ("refusing global
    __builtin__.bytes"); an (N, 1) label array, as converters write, said "4 labels for 4 images"."""
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    data = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072).astype(np.uint8)
    with open(folder / cifar.TEST_BATCH, "wb") as handle:
        pickle.dump({b"batch_label": b"", b"data": data, b"labels": np.array([[3], [1], [4], [1]])}, handle,
                    protocol=2)
    images, labels = cifar.read_batch(folder / cifar.TEST_BATCH)
    assert labels.tolist() == [3, 1, 4, 1] and np.array_equal(images.reshape(4, -1), data)


def test_cifar10_names_a_gzipped_batch_and_an_unextracted_archive(tmp_path: pathlib.Path) -> None:
    """A gzipped batch said "invalid load key, '\\x1f'"; a --data-dir holding only cifar-10-python.tar.gz
    said no batches were there without naming the archive beside them."""
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    packed = gzip.compress((folder / "data_batch_2").read_bytes())
    (folder / "data_batch_2").write_bytes(packed)
    with pytest.raises(DataUnavailableError, match="data_batch_2 is gzip-compressed: decompress it"):
        cifar.read_batch(folder / "data_batch_2")
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / cifar.ARCHIVE).write_bytes(b"an archive")
    with pytest.raises(DataUnavailableError, match=re.escape(f"{offline / cifar.ARCHIVE} is there unextracted: "
                                                             f"tar xzf {offline / cifar.ARCHIVE} -C {offline}")):
        cifar.locate(offline)


def test_synthetic_module_is_listed_in_shapes() -> None:
    # The DatasetSpecs and the generator agree on shapes, so pairing models without loading is right.
    for name in ("synthetic", "synthetic3d"):
        assert synthetic.SHAPES[name][0] == spec(name).input_shape


def test_mnist3d_corrupt_h5_is_named(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("h5py", reason="h5py is an optional dependency")
    path = _write_h5_placeholder(tmp_path)
    with pytest.raises(DataUnavailableError) as caught:
        spec("mnist3d").load(data_dir=tmp_path, seed=0)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_fashion_mnist_says_when_it_passes_over_the_folder_named(tmp_path: pathlib.Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    mnist_labels = np.array(mnist_module.MNIST.fingerprint + (0, 1, 2, 3), dtype=np.uint8)
    make_idx_set(tmp_path / "given", n_train=len(mnist_labels), train_labels=mnist_labels)
    system = tmp_path / "system"  # stands in for /usr/share/datasets/fashion-mnist
    make_idx_set(system, seed=5)
    patched = dataclasses.replace(mnist_module.FASHION_MNIST, system_dirs=(system,))
    monkeypatch.setitem(mnist_module.IDX_DATASETS, "fashion-mnist", patched)
    monkeypatch.setattr(mnist_module, "FASHION_MNIST", patched)
    with caplog.at_level(logging.WARNING):
        splits = spec("fashion-mnist").load(data_dir=tmp_path / "given", seed=0)
    assert splits.info["origin"] == "system"
    assert "holds MNIST, not Fashion-MNIST" in caplog.text and f"using {system} instead" in caplog.text


def test_an_incomplete_cifar10_folder_names_what_it_lacks(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / cifar.FOLDER
    make_cifar(folder)
    (folder / "data_batch_3").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataUnavailableError, match=r"cifar-10-batches-py lacks data_batch_3, test_batch"):
        spec("cifar10").load(data_dir=tmp_path, seed=0)


def test_a_dataset_with_an_empty_test_split_is_refused_at_load_naming_the_split() -> None:
    # it failed later inside training with "Expected floating point type for target ..., got Long"
    import torch

    from harness.errors import StageError
    from harness.runner import DatasetCache

    def load(data_dir, seed, **kwargs):
        x, y = torch.zeros(8, 1, 4, 4), torch.zeros(8, dtype=torch.int64)
        return Splits(train=(x, y), test=(x[:0], y[:0]), num_classes=2)

    with pytest.raises(StageError, match="dataset 'hollow' breaks the Splits contract: the test split is empty"):
        DatasetCache(None, 0).get(DatasetSpec("hollow", load))


def test_non_finite_inputs_break_the_splits_contract_before_training_blames_the_learning_rate():
    import torch

    from harness.errors import StageError
    from harness.runner import DatasetCache

    def load(data_dir, seed, **kwargs):
        x, y = torch.zeros(8, 1, 4, 4), torch.zeros(8, dtype=torch.int64)
        bad = x.clone()
        bad[0, 0, 0, 0], bad[3, 0, 1, 1], bad[5, 0, 2, 2] = float("nan"), float("nan"), float("-inf")
        return Splits(train=(bad, y), test=(x, y), num_classes=2)

    with pytest.raises(StageError, match=r"dataset 'holey' breaks the Splits contract: train inputs hold 2 NaN and "
                                         r"1 infinite value\(s\)$"):
        DatasetCache(None, 0).get(DatasetSpec("holey", load))
