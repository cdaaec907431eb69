"""``harness cache``: what the dataset cache holds, and clearing it, on entries the real cache wrote."""

from __future__ import annotations

import json
import os
import sys
import time

from pathlib import Path

import pytest
from conftest import run_cli


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache root with two decoded mnist entries (one unused for 40 days), a synthetic3d entry, mnist's
    download folder, an unfinished write from two hours ago and one being written now."""
    import torch

    from harness_plugins.datasets import cache as dataset_cache

    root = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(root))
    paths = {}
    for label, name, n in (("old", "mnist", 1000), ("new", "mnist", 2000), ("3d", "synthetic3d", 500)):
        _, info = dataset_cache.cached(name, {"n": n}, lambda n=n: {"x": torch.zeros(n)})
        assert info["cache"] == "miss"
        paths[label] = info["cache_path"]
    month_ago = time.time() - 40 * 86400
    os.utime(paths["old"], (month_ago, month_ago))
    download = root / "datasets" / "mnist" / "download" / "MNIST" / "raw"
    download.mkdir(parents=True)
    (download / "train-images-idx3-ubyte.gz").write_bytes(b"\0" * 3000)
    # named as the cache's _write names them now (stale) and did before harness.results.atomic_write (fresh)
    stale, fresh = _unfinished(Path(paths["new"])), _unfinished(Path(paths["new"]), before=True)
    stale.write_bytes(b"\0" * 10)
    fresh.write_bytes(b"\0" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    return root, paths, {"stale": str(stale), "fresh": str(fresh), "download": str(download.parents[1])}


def _unfinished(entry: Path, before: bool = False) -> Path:
    """A temporary file of the entry, as the cache's ``_write`` names it (``.<digest>.pt.<random>.tmp``), or
    ``before`` it wrote through :func:`harness.results.atomic_write` (``.<digest>.<random>.tmp``)."""
    import tempfile

    from harness.results import temp_file_beside

    fd, name = (tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".tmp", dir=entry.parent) if before
                else temp_file_beside(entry))
    os.close(fd)
    return Path(name)


def _env(root):
    return {**os.environ, "HARNESS_CACHE_DIR": str(root)}


def test_the_listing_counts_what_is_there(cache):
    root, paths, other = cache
    result = run_cli("cache", "--json", env=_env(root))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["root"] == str(root) and data["removed"] == []
    kinds = {item["path"]: (item["dataset"], item["kind"], item["bytes"]) for item in data["items"]}
    assert kinds[paths["old"]][:2] == ("mnist", "decoded") and kinds[paths["3d"]][:2] == ("synthetic3d", "decoded")
    assert kinds[paths["new"]][2] == os.path.getsize(paths["new"]) > kinds[paths["old"]][2]
    assert kinds[other["download"]] == ("mnist", "download", 3000)
    assert kinds[other["stale"]][1] == kinds[other["fresh"]][1] == "unfinished"
    table = run_cli("cache", env=_env(root))
    assert table.returncode == 0 and f"cache: {root} (HARNESS_CACHE_DIR)" in table.stdout
    assert "harness cache --clear" in table.stdout.splitlines()[-1]


def test_a_cache_hit_marks_the_entry_used(cache):
    import torch

    from harness_plugins.datasets import cache as dataset_cache

    root, paths, _ = cache
    before = os.path.getmtime(paths["old"])
    _, info = dataset_cache.cached("mnist", {"n": 1000}, lambda: {"x": torch.ones(1)})
    assert info["cache"] == "hit" and info["cache_path"] == paths["old"]
    assert os.path.getmtime(paths["old"]) > before + 30 * 86400  # read today, not 40 days ago


def test_clear_older_than_keeps_what_runs_use_and_what_is_being_written(cache):
    root, paths, other = cache
    result = run_cli("cache", "--clear", "--older-than", "30", "--json", env=_env(root))
    assert result.returncode == 0, result.stderr
    removed = {item["path"] for item in json.loads(result.stdout)["removed"]}
    assert removed == {paths["old"], other["stale"]}
    assert not os.path.exists(paths["old"]) and not os.path.exists(other["stale"])
    for kept in (paths["new"], paths["3d"], other["fresh"], other["download"]):
        assert os.path.exists(kept), kept


def test_clear_one_dataset_with_its_downloads(cache):
    root, paths, other = cache
    result = run_cli("cache", "--clear", "--downloads", "--datasets", "mnist", env=_env(root))
    assert result.returncode == 0, result.stderr
    assert "deleted 4 item(s)" in result.stdout  # two entries, the download folder, the stale write
    assert not os.path.exists(other["download"]) and not os.path.exists(paths["new"])
    assert os.path.exists(paths["3d"]) and os.path.exists(other["fresh"])
    listing = json.loads(run_cli("cache", "--json", env=_env(root)).stdout)
    assert [item["path"] for item in listing["items"]] == [other["fresh"], paths["3d"]]


def test_clear_older_than_keeps_a_download_a_run_read_lately(cache):
    """A download's files keep the time they were fetched (entries are keyed on them); its .last-used mark,
    touched by the dataset plugin on every read, says whether a run still uses it."""
    from harness.cache import USED_MARK

    root, _, other = cache
    old = time.time() - 40 * 86400
    for path in [Path(other["download"]), *Path(other["download"]).rglob("*")]:
        os.utime(path, (old, old))
    from harness.cache import cache_items, removable

    assert [i.path for i in removable(cache_items(), 30, downloads=True) if i.kind == "download"] == [
        other["download"]]  # fetched 40 days ago and never marked: it would go
    (Path(other["download"]) / USED_MARK).touch()
    result = run_cli("cache", "--clear", "--downloads", "--older-than", "30", "--json", env=_env(root))
    assert result.returncode == 0, result.stderr
    assert os.path.isdir(other["download"]), json.loads(result.stdout)["removed"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_linked_download_folder_is_unlinked_not_emptied(cache, tmp_path):
    root, _, _ = cache
    shared = tmp_path / "shared-mnist"
    (shared / "MNIST" / "raw").mkdir(parents=True)
    (shared / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\0" * 100)
    link = root / "datasets" / "synthetic3d" / "download"
    link.symlink_to(shared, target_is_directory=True)
    result = run_cli("cache", "--clear", "--downloads", "--datasets", "synthetic3d", env=_env(root))
    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(link) and (shared / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file()


@pytest.mark.parametrize("args, needle", [
    (["--older-than", "3"], "--older-than and --downloads choose what --clear deletes; add --clear"),
    (["--clear", "--older-than", "-1"], "--older-than"),
    (["--clear", "--datasets", "mnsit"], "unknown dataset 'mnsit'; did you mean: mnist"),  # a typo read as done
])
def test_bad_cache_options_are_one_line(tmp_path, args, needle):
    result = run_cli("cache", *args, env=_env(tmp_path))
    assert result.returncode == 2 and needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_cache_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    why = f"the cache folder {tmp_path / 'file' / 'sub'} cannot be made: {tmp_path / 'file'} is a file (HARNESS_CACHE_DIR)"
    result = run_cli("cache", env=_env(tmp_path / "file" / "sub"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"harness: error: {why}"]
    # a run says so first (a dataset without its files would blame them), and one that needs no cache runs
    result = run_cli("run", "--models", "mnist-mlp", "--datasets", "synthetic", "--epochs", "1", "--max-train-samples",
                     "64", "--max-test-samples", "32", "--device", "cpu", "--batch-sizes", "1", "--quick",
                     "--no-torch-latency", "--cold-runs", "0", "--exporter", "torchscript", "--out",
                     str(tmp_path / "o"), env=_env(tmp_path / "file" / "sub"))
    assert result.returncode == 0 and f"harness: warning: {why}: datasets are decoded on every run" in result.stderr


def test_a_clear_that_deletes_nothing_says_so_and_a_cached_unregistered_name_is_known(cache):
    root, _, _ = cache
    run_cli("cache", "--clear", "--older-than", "365", env=_env(root))  # the stale unfinished write goes first
    result = run_cli("cache", "--clear", "--older-than", "365", env=_env(root))
    assert result.returncode == 0 and "deleted nothing: every entry was used in the last 365 day(s)" in result.stdout
    (root / "datasets" / "gone-plugin").mkdir()  # a dataset whose plugin was uninstalled: still listable
    assert run_cli("cache", "--datasets", "gone-plugin", env=_env(root)).returncode == 0


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_clear_deletes_only_the_files_the_cache_writes(cache, tmp_path):
    """A file the user put in a dataset's folder is not a cache entry, whatever its name: clearing leaves
    it (listed as "other"), and a link there is never followed to the file it points at."""
    root, paths, other = cache
    mnist = root / "datasets" / "mnist"
    mine = [mnist / "notes.txt", mnist / "model.pt", mnist / ".draft.tmp", mnist / "0123456789abcdef.pt"]
    for path in mine:
        path.write_bytes(b"mine")
    two_hours_ago = time.time() - 7200
    os.utime(mnist / ".draft.tmp", (two_hours_ago, two_hours_ago))  # as old as a stale unfinished write
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"\0" * 5000)
    linked_entry = mnist / ("f" * 24 + ".pt")  # named as an entry, but a link out of the cache
    linked_entry.symlink_to(outside)
    result = run_cli("cache", "--clear", "--downloads", "--json", env=_env(root))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    removed = {item["path"] for item in data["removed"]}
    assert removed == {paths["old"], paths["new"], paths["3d"], other["stale"], other["download"]}
    for path in (paths["old"], paths["new"], paths["3d"], other["stale"], other["download"]):
        assert not os.path.lexists(path), path
    for path in mine:
        assert path.read_bytes() == b"mine", path
    assert outside.stat().st_size == 5000 and linked_entry.is_symlink()
    left = {item["path"]: item["kind"] for item in data["items"]}
    assert left == {**{str(p): "other" for p in mine}, str(linked_entry): "other", other["fresh"]: "unfinished"}
    assert data["errors"] == []
    table = run_cli("cache", env=_env(root)).stdout
    assert any(line.split()[:3] == ["mnist", "other", "5"] for line in table.splitlines()), table


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_clear_never_follows_a_linked_dataset_folder(cache, tmp_path):
    """A dataset folder linked into the cache from elsewhere (a user's, or planted) is not entered: its
    files, entry-named or not, stay, and are not counted; the link itself stays too."""
    root, paths, _ = cache
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = [elsewhere / "data.bin", elsewhere / ("a" * 24 + ".pt"), elsewhere / "download"]
    for path in theirs:
        path.write_bytes(b"\0" * 4096)
    link = root / "datasets" / "cifar10"
    link.symlink_to(elsewhere, target_is_directory=True)
    result = run_cli("cache", "--clear", "--downloads", "--json", env=_env(root))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and all(path.is_file() and path.stat().st_size == 4096 for path in theirs)
    assert not os.path.exists(paths["old"])  # the cache's own entries still go
    data = json.loads(result.stdout)
    assert not [i for i in data["removed"] if i["dataset"] == "cifar10"]
    linked = [item for item in data["items"] if item["dataset"] == "cifar10"]
    assert [(i["path"], i["kind"], i["bytes"]) for i in linked] == [(str(link), "other", 0)]  # listed, not entered


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_the_size_of_a_download_counts_no_file_outside_it(cache, tmp_path):
    """A link inside a download folder is counted as a link, and clearing the folder removes the link, never
    what it points at."""
    root, _, other = cache
    outside = tmp_path / "big.bin"
    outside.write_bytes(b"\0" * 100_000)
    (Path(other["download"]) / "MNIST" / "big.bin").symlink_to(outside)
    listing = json.loads(run_cli("cache", "--json", env=_env(root)).stdout)
    sizes = {item["path"]: item["bytes"] for item in listing["items"]}
    assert sizes[other["download"]] < 100_000
    result = run_cli("cache", "--clear", "--downloads", "--datasets", "mnist", env=_env(root))
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(other["download"]) and outside.stat().st_size == 100_000


def test_marking_a_download_used_never_follows_a_planted_link(tmp_path):
    """A shared cache's .last-used made a link's target: an empty file anywhere the user could write."""
    import os

    import pytest

    from harness.cache import USED_MARK, mark_used

    if not hasattr(os, "O_NOFOLLOW"):
        pytest.skip("no O_NOFOLLOW here")
    target = tmp_path / "elsewhere" / "made-by-harness"
    target.parent.mkdir()
    (tmp_path / USED_MARK).symlink_to(target)
    mark_used(tmp_path / USED_MARK)
    assert not target.exists()
    plain = tmp_path / "download"
    plain.mkdir()
    mark_used(plain / USED_MARK)  # the usual case: made
    assert (plain / USED_MARK).is_file()
