"""results.json as RunFolder writes it, job by job."""

from __future__ import annotations

from harness.results import RunFolder


def test_results_json_is_the_documents_json_however_its_jobs_were_recorded(tmp_path):
    """RunFolder keeps each job's JSON between saves: the file must still be exactly json_text of the data."""
    import json

    from harness.results import json_text

    folder = RunFolder.create(tmp_path, "r", {"host": "h"}, {"epochs": 1})
    rows = [{"id": f"m{i}@d", "status": "ok", "metrics": {"accuracy": 0.5 + i / 100, "nll": float("nan")},
             "latency": [{"batch_size": 1, "p50_ms": 0.1 * (i + 1)}], "point": {"seed": i}} for i in range(4)]
    for row in rows:
        folder.record(row)
        assert folder.results_path.read_text() == json_text(folder.data) + "\n"
    folder.record({**rows[1], "status": "failed", "metrics": None})  # a job run again: its new row is saved
    folder.data["edge"] = {"qualifying": ["m0@d"]}  # the document's own fields change between saves
    folder.save()
    saved = json.loads(folder.results_path.read_text())
    assert folder.results_path.read_text() == json_text(folder.data) + "\n"
    assert [j["id"] for j in saved["jobs"]] == ["m0@d", "m2@d", "m3@d", "m1@d"]
    assert saved["jobs"][-1]["status"] == "failed" and saved["jobs"][0]["metrics"]["nll"] is None
    assert saved["edge"] == {"qualifying": ["m0@d"]}
    rows[0]["status"] = "changed in place"  # after its save: the recorded figures stand (record() replaces)
    folder.save()
    assert json.loads(folder.results_path.read_text())["jobs"][0]["status"] == "ok"
    reopened = RunFolder.open(folder.path)
    reopened.save()  # a resumed run's first save: every job made anew, the same text
    assert reopened.results_path.read_text() == json_text(folder.data | {"jobs": saved["jobs"]}) + "\n"


def test_a_run_folder_whose_path_leaves_its_files_no_room_is_refused_before_any_job(tmp_path):
    """An --out near PATH_MAX trained the first job, then failed writing its weights (exit 74), with a
    --resume hint that failed the same way."""
    import os
    import sys

    import pytest

    from harness.errors import HarnessError

    if sys.platform == "win32" or not hasattr(os, "pathconf"):
        pytest.skip("PATH_MAX is read with os.pathconf (POSIX)")
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    room = limit - 64 - len(str(tmp_path)) - len("/r")  # within the limit, but not with room for the files
    parts = ["d" * 200] * (room // 201) + ["e" * (room % 201 - 1)]
    deep = tmp_path / "/".join(p for p in parts if p)
    assert limit - 128 < len(str(deep / "r")) < limit
    with pytest.raises(HarnessError, match=f"with its files' names it would pass this system's limit of {limit} "
                                           "bytes on a path: choose a shorter --out or --run-id"):
        RunFolder.create(deep, "r", {}, {})
    assert not (tmp_path / ("d" * 200)).exists()  # refused before anything was made
    ordinary = tmp_path / "d"  # an ordinary path still makes its folder
    assert RunFolder.create(ordinary, "r", {}, {}).path == ordinary / "r"


def test_windows_260_character_limit_refuses_a_deep_run_folder_up_front(tmp_path, monkeypatch):
    """Windows has no os.pathconf, so the check returned at once there, the one system whose limit (260
    characters) a OneDrive folder reaches: the run failed after its first job with exit 74."""
    import pytest

    from harness import results
    from harness.errors import HarnessError

    monkeypatch.setattr(results.sys, "platform", "win32")  # winreg is not importable here: long paths off
    deep = tmp_path / ("d" * max(1, 200 - len(str(tmp_path))))
    with pytest.raises(HarnessError, match="limit of 260 characters on a path"):
        results.check_path_room(deep / "r")
    results.check_path_room(tmp_path / "r")  # short enough
    monkeypatch.setattr(results, "_windows_path_limit", lambda: 32767)  # LongPathsEnabled
    results.check_path_room(deep / "r")


def test_a_run_folder_with_links_where_the_harness_writes_is_refused(tmp_path):
    """A run folder from another CI job (artifacts keep links): onnx/JOB.onnx linked to another file was
    overwritten by a --resume's export, a linked onnx/ had files removed, a linked plots/ got the report's
    images."""
    import json
    import os
    from pathlib import Path

    import pytest

    from harness.errors import HarnessError
    from harness.report import write_reports
    from harness.results import check_no_links

    if not hasattr(os, "symlink") or os.name != "posix":
        pytest.skip("symbolic links as POSIX makes them")
    run = tmp_path / "run"
    (run / "onnx").mkdir(parents=True)
    (run / "weights").mkdir()
    (run / "onnx" / "m_d.onnx").write_bytes(b"x")
    check_no_links(run, "resume it")  # a plain run folder
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / "onnx" / "variants").mkdir()
    (run / "onnx" / "variants" / "m_d.fp16.onnx").symlink_to(victim)
    with pytest.raises(HarnessError, match=r"holds symbolic links where the harness writes \(onnx/variants/m_d.fp16"
                                           r".onnx\): from elsewhere, they could point at any file; remove them to "
                                           r"resume it"):
        check_no_links(run, "resume it")
    (run / "onnx" / "variants" / "m_d.fp16.onnx").unlink()
    (run / "weights").rmdir()
    (run / "weights").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(HarnessError, match=r"\(weights\)"):
        check_no_links(run, "resume it")
    (run / "weights").unlink()
    (run / "plots").mkdir()  # plots/ may link elsewhere on purpose; a plot replaces a link, never writes through it
    (run / "plots" / "accuracy_vs_latency.png").symlink_to(victim)
    check_no_links(run, "resume it")
    write_reports(run, json.loads((Path(__file__).parent / "fixtures" / "report_run" / "results.json").read_text()))
    assert victim.read_text() == "precious" and not (run / "plots" / "accuracy_vs_latency.png").is_symlink()
