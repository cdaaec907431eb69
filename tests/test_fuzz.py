"""Property tests: names from plugins never escape the run folder; config parsing fails only cleanly."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.config import sweep_points, validate_config
from harness.errors import HarnessError
from harness.results import atomic_write_json, job_file_stem, run_folder_name, safe_name


@pytest.mark.parametrize("clean", [safe_name, job_file_stem])
@given(name=st.text(min_size=0, max_size=300))
def test_file_names_stay_inside_their_folder(clean, name):
    cleaned = clean(name)
    assert cleaned and len(cleaned) <= 80
    assert set(cleaned) <= set(string.ascii_letters + string.digits + "._-")
    assert ".." not in cleaned and not cleaned.startswith(".")
    root = Path("/run").resolve()
    assert (root / cleaned).resolve().parent == root


def test_safe_name_examples():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("/abs/path") == "abs_path"
    assert safe_name("mnist-cnn@synthetic") == "mnist-cnn_synthetic"
    assert safe_name("...") == "unnamed"


@given(name=st.text(min_size=0, max_size=300))
@example(name="\U0001f600" * 100)
def test_run_folder_names_stay_inside_their_folder(name):
    cleaned = run_folder_name(name)
    assert cleaned and len(cleaned.encode("utf-8")) <= 200
    assert "/" not in cleaned and "\\" not in cleaned and "\0" not in cleaned
    assert ".." not in cleaned and not cleaned.startswith(".") and cleaned == cleaned.strip()
    root = Path("/run").resolve()
    assert (root / cleaned).resolve().parent == root


def test_run_ids_in_other_scripts_keep_their_letters(monkeypatch):
    """Every --run-id in another script was the folder 'unnamed': a second such run clashed with the first."""
    assert run_folder_name("実験") == "実験" and run_folder_name("テスト") == "テスト"
    assert run_folder_name("Étude 1/../x") == "Étude_1_._x"
    assert run_folder_name("my run") == safe_name("my run") == "my_run"  # ASCII ids keep their old folder
    assert run_folder_name("a\u202eb") == "a_b"  # a direction override is not printable

    def ascii_only(name):  # a file system whose encoding is ASCII (LC_ALL=C without UTF-8 mode)
        name.encode("ascii")
        return name.encode()

    monkeypatch.setattr("os.fsencode", ascii_only)
    first, second = run_folder_name("実験"), run_folder_name("テスト")
    assert first != second and first.isascii() and first.startswith("unnamed-")
    assert run_folder_name("Étude").startswith("tude-")


def test_two_runs_named_in_another_script_are_two_folders(tmp_path):
    from harness.results import RunFolder, run_taken

    first = RunFolder.create(tmp_path, "実験", {}, {})
    first.save()
    assert first.path.name == "実験" and run_taken(tmp_path, "実験") is not None
    assert run_taken(tmp_path, "テスト") is None
    assert RunFolder.create(tmp_path, "テスト", {}, {}).path == tmp_path / "テスト"


_id_part = st.text(alphabet="abAB_ .+@#=,-", min_size=1, max_size=6)


@given(st.tuples(_id_part, _id_part, _id_part), st.tuples(_id_part, _id_part, _id_part))
def test_distinct_job_ids_get_distinct_file_stems(a, b):
    """Distinct even to a case-insensitive file system (Windows, macOS): CNN@d and cnn@d were one file."""
    ids = [f"{m}@{d}" + (f"#lr={v}" if v != "-" else "") for m, d, v in (a, b)]
    if ids[0] != ids[1]:
        assert job_file_stem(ids[0]).casefold() != job_file_stem(ids[1]).casefold()


def test_job_file_stem_examples():
    assert job_file_stem("mnist-fast@mnist") == "mnist-fast_mnist"  # plain ids stay readable
    assert job_file_stem("mnist-fast@mnist#batch_size=64,lr=0.1") == "mnist-fast_mnist_batch_size_64_lr_0.1"
    assert job_file_stem("a+b@d") != job_file_stem("a@b+d")  # '+' is cleaned to '_' too
    assert job_file_stem("CNN@mnist").casefold() != job_file_stem("cnn@mnist").casefold()  # one file on Windows
    clashing = job_file_stem("odd net@d"), job_file_stem("odd_net@d")
    assert clashing[0] != clashing[1] and all(s.startswith("odd_net_d-") for s in clashing)
    long = job_file_stem("m" * 100 + "@d")
    assert len(long) == 80 and long != job_file_stem("m" * 101 + "@d")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
known_keys = st.sampled_from(["epochs", "models", "batch_sizes", "lr", "seed", "device", "sweep", "threads",
                              "quick", "run-id", "nonsense"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(known_keys | st.text(max_size=12), json_values, max_size=6))
@example({"sweep": {"\n": None}})  # a sweep key with a line break broke the one-line error
@example({"sweep": {"2lr": [1]}})
def test_config_validation_accepts_or_raises_harness_error_only(raw):
    try:
        config = validate_config(raw)
    except HarnessError as exc:
        assert "\n" not in str(exc)
        return
    for key, value in config.items():
        if key in ("models", "batch_sizes", "threads", "sweep"):
            assert isinstance(value, list)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["batch_size", "lr", "seed", "dropout"]),
                       st.lists(st.integers(1, 100), min_size=1, max_size=4), min_size=1, max_size=4))
def test_sweep_grid_is_the_cross_product_of_distinct_values(table):
    repeated = [key for key, values in table.items() if len(set(values)) < len(values)]
    if repeated:  # a value listed twice would run once silently, or twice alike under two labels
        with pytest.raises(HarnessError, match=r"sweep\.\w+ lists \d+ twice"):
            sweep_points(table)
        return
    points = sweep_points(table)
    expected = 1
    for values in table.values():
        expected *= len(values)
    assert len(points) == expected == len({tuple(sorted(p.items())) for p in points})
    assert all(set(point) == set(table) for point in points)


@given(json_values)
def test_atomic_json_write_round_trips(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("atomic") / "r.json"
    atomic_write_json(path, {"v": value})
    assert json.loads(path.read_text()) == {"v": value}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from harness.ray_executor import write_artifacts
    from harness.results import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "results.json", "{}")
        write_artifacts(tmp_path, {"onnx/a.onnx": b"1"})
        os.umask(0o002)  # the mode follows the umask of the moment, as open() does
        atomic_write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    for path in (tmp_path / "results.json", tmp_path / "onnx" / "a.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, oct(path.stat().st_mode)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o664
