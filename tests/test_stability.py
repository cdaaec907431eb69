"""When a latency row is marked unstable (drift or spread), what its footnote says, and the cores a run may use
(CPU affinity and the cgroup CPU quota). Synthetic samples and a fake cgroup tree: nothing here is timed."""

from __future__ import annotations

import os

import pytest

from harness import latency
from harness.latency import (
    STABLE_DRIFT_PCT,
    STABLE_MEAN_OVER_P50,
    TIMER_OVERHEAD_WARN_PCT,
    LatencyStats,
    cgroup_cpu_limit,
    unstable_note,
    unstable_reasons,
    usable_cores,
)

QUIET_MS = 0.11


def ns(values_ms: list[float]) -> list[int]:
    return [round(v * 1e6) for v in values_ms]


def bursty(n: int = 1000, every: int = 20, burst_ms: float = 4.4) -> list[float]:
    """Calls of 0.11 ms with every ``every``-th one caught by another process's burst: the same in both halves."""
    return [burst_ms if i % every == every - 1 else QUIET_MS for i in range(n)]


def quiet(n: int = 1000) -> list[float]:
    """Calls of about 0.11 ms that wobble (the mean 1.21x the p50), as a shared machine's quiet rows did."""
    return [QUIET_MS * (1.0 + (0.9 if i % 7 == 0 else 0.3 if i % 3 == 0 else 0.0)) for i in range(n)]


def test_steady_interference_is_unstable_though_both_halves_agree():
    """A review's bursty rows (p99 20x the quiet one, samples/s halved) had drift 0.1-2 % and were "stable"."""
    stats = LatencyStats.from_ns(ns(bursty()))
    assert stats.drift_pct <= STABLE_DRIFT_PCT  # the halves agree: drift alone saw nothing
    assert stats.p50_ms == pytest.approx(QUIET_MS) and stats.p99_ms == pytest.approx(4.4)
    assert stats.mean_ms > STABLE_MEAN_OVER_P50 * stats.p50_ms
    assert stats.stable is False and stats.row(32)["stable"] is False
    calm = LatencyStats.from_ns(ns(quiet()))
    assert calm.mean_ms < STABLE_MEAN_OVER_P50 * calm.p50_ms and calm.drift_pct <= STABLE_DRIFT_PCT
    assert calm.stable is True
    # the limit is the mean against the p50: just above it is unstable, at it is not
    assert LatencyStats(10, 1, 1, 1, 1.26, 1, 1, 9, cv=0.5, drift_pct=0.0).stable is False
    assert LatencyStats(10, 1, 1, 1, STABLE_MEAN_OVER_P50, 1, 1, 9, cv=0.5, drift_pct=0.0).stable is True
    # drift still counts on its own
    assert LatencyStats(10, 1, 1, 1, 1, 0.1, 1, 1, cv=0.1, drift_pct=STABLE_DRIFT_PCT + 0.1).stable is False


def test_one_long_preemption_among_thousands_of_short_calls_is_no_instability():
    """Its cv is above 4 (the standard deviation is one outlier's), yet p50, p99 and the mean (+2 %) hold."""
    stats = LatencyStats.from_ns(ns([0.01] * 50_000 + [10.0]))
    assert stats.cv > 4 and stats.mean_ms == pytest.approx(0.0102, rel=1e-3)
    assert stats.stable is True


def test_an_unstable_rows_reasons_are_its_figures_beyond_their_limits():
    pulled, held = {"mean_ms": 2.0, "p50_ms": 1.0}, {"mean_ms": 1.1, "p50_ms": 1.0}
    assert unstable_reasons({"stable": False, "drift_pct": 12.3, **held}) == ["drift"]
    assert unstable_reasons({"stable": False, "drift_pct": 1.0, **pulled}) == ["spread"]
    assert unstable_reasons({"stable": False, "drift_pct": 12.3, **pulled}) == ["drift", "spread"]
    assert unstable_reasons({"stable": False}) == ["drift"]  # an older run's row: drift was the only criterion
    assert unstable_reasons({"stable": True, "drift_pct": 12.3, **pulled}) == []  # as the run marked it
    assert unstable_reasons({"drift_pct": 12.3}) == []


DRIFT = "the second half of the runs' median moved more than 5 % from the first"
SPREAD = "a few calls far slower than the rest pull the mean more than 25 % above the p50"


def test_the_footnote_says_which_reason_holds_for_the_rows_under_the_table_with_the_worst_figure():
    drift = {"stable": False, "drift_pct": 12.34, "mean_ms": 1.1, "p50_ms": 1.0}
    spread = {"stable": False, "drift_pct": 1.0, "mean_ms": 4.72, "p50_ms": 1.0}
    spread_less = {"stable": False, "drift_pct": 0.5, "mean_ms": 3.51, "p50_ms": 1.0}
    calm = {"stable": True, "drift_pct": 30.0, "mean_ms": 9.0, "p50_ms": 1.0}  # not starred: its figures are not said
    assert unstable_note([calm]) is None
    # drift alone: the text it always had
    assert unstable_note([drift, calm], "at a quieter moment") == (
        f"* unstable: {DRIFT} (drift_pct up to 12.3 %): a busy machine; its p50 and p99 do not repeat "
        "(measure again at a quieter moment)")
    # spread alone: no word of a drift, and the figures it ruins
    note = unstable_note([spread, spread_less, calm], "at a quieter moment")
    assert note == (f"* unstable: {SPREAD} (up to 4.7x): a busy machine; its p99 and samples/s do not repeat "
                    "(measure again at a quieter moment)")
    assert "drift" not in note and "second half" not in note
    # rows of either kind: both reasons, each with its own worst figure, joined by "or"
    note = unstable_note([drift, spread_less], "at a quieter moment")
    assert note.startswith(f"* unstable: {DRIFT} (drift_pct up to 12.3 %), or {SPREAD} (up to 3.5x): a busy "
                           "machine; its p50, p99 and samples/s do not repeat")
    # every row both: "and"
    both = {"stable": False, "drift_pct": 8.0, "mean_ms": 2.0, "p50_ms": 1.0}
    assert f"(drift_pct up to 8.0 %), and {SPREAD} (up to 2.0x)" in unstable_note([both])
    # a row without its figures still gets a reason, without a number
    assert unstable_note([{"stable": False, "p50_ms": 1.0}]).startswith(f"* unstable: {DRIFT}: a busy machine")


def test_the_docstring_gives_the_warning_and_stability_limits_the_code_uses():
    doc = latency.__doc__
    assert f":data:`TIMER_OVERHEAD_WARN_PCT`, {TIMER_OVERHEAD_WARN_PCT:g} %" in doc
    assert "above 1 %" not in doc
    assert f":data:`STABLE_DRIFT_PCT` ({STABLE_DRIFT_PCT:g})" in doc and (
        f":data:`STABLE_MEAN_OVER_P50` ({STABLE_MEAN_OVER_P50:g})" in doc)


# -- usable cores: affinity and the cgroup CPU quota -------------------------------------------------------


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    """A fake cgroup tree (``root``) and /proc/self/cgroup (``proc``) on a 16-core affinity."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    root.mkdir()
    proc.write_text("0::/\n")
    monkeypatch.setattr(latency, "CGROUP_ROOT", root)
    monkeypatch.setattr(latency, "PROC_CGROUP", proc)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    return root, proc


def test_a_cgroup_v2_cpu_quota_caps_the_usable_cores(cgroup):
    root, _ = cgroup
    assert (cgroup_cpu_limit(), usable_cores()) == (None, 16)  # no quota file: the affinity's count
    (root / "cpu.max").write_text("max 100000\n")
    assert (cgroup_cpu_limit(), usable_cores()) == (None, 16)  # "max": no quota
    (root / "cpu.max").write_text("200000 100000\n")  # docker --cpus=2
    assert (cgroup_cpu_limit(), usable_cores()) == (2, 2)
    (root / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: a second core is used part of the time
    assert usable_cores() == 2
    (root / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one core
    assert usable_cores() == 1
    (root / "cpu.max").write_text("6400000 100000\n")  # a quota above the affinity: the affinity binds
    assert usable_cores() == 16


def test_the_tightest_quota_of_the_process_cgroup_and_those_above_it_binds(cgroup):
    root, proc = cgroup
    proc.write_text("0::/kubepods/pod1/ctr\n")
    (root / "kubepods" / "pod1" / "ctr").mkdir(parents=True)
    (root / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("max 100000\n")
    (root / "kubepods" / "pod1" / "cpu.max").write_text("300000 100000\n")
    assert usable_cores() == 3
    # a container whose /sys/fs/cgroup is its own cgroup while /proc/self/cgroup names the host's path
    proc.write_text("0::/docker/abc\n")
    (root / "cpu.max").write_text("400000 100000\n")
    assert usable_cores() == 4


def test_a_cgroup_v1_cfs_quota_caps_the_usable_cores(cgroup):
    root, proc = cgroup
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    cpu = root / "cpu,cpuacct"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert (cgroup_cpu_limit(), usable_cores()) == (None, 16)  # -1: no quota
    (cpu / "cpu.cfs_quota_us").write_text("200000\n")
    assert (cgroup_cpu_limit(), usable_cores()) == (2, 2)


def test_missing_or_unreadable_cgroup_files_leave_the_affinity_count(cgroup, monkeypatch):
    root, proc = cgroup
    (root / "cpu.max").mkdir()  # unreadable as a file
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text("garbage\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("0\n")
    assert (cgroup_cpu_limit(), usable_cores()) == (None, 16)
    proc.unlink()  # no /proc/self/cgroup: the mount points are still read
    (root / "unified").mkdir()
    (root / "unified" / "cpu.max").write_text("100000 100000\n")
    assert usable_cores() == 1
    monkeypatch.setattr(latency, "CGROUP_ROOT", root / "absent")
    assert (cgroup_cpu_limit(), usable_cores()) == (None, 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: (_ for _ in ()).throw(OSError()), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cores() == 8  # no affinity call (macOS): the machine's count


def test_the_edge_answer_says_why_its_pick_is_unstable():
    """The answer's doubt said "its p50 is unstable (drifted ...)" of every unstable pick: of a spread one that
    is wrong twice (its p50 held; its p99 and mean did not)."""
    from harness.edge import Budget, _doubts

    remedy = "measure again at a quieter moment, and without --quick if the run used it before relying on it"
    drift = {"stable": False, "drift_pct": 12.34, "mean_ms": 1.1, "p50_ms": 1.0}
    assert _doubts({}, drift, Budget()) == f"; its p50 is unstable (drifted 12.3 %): {remedy}"
    spread = {"stable": False, "drift_pct": 1.0, "mean_ms": 4.72, "p50_ms": 1.0}
    assert _doubts({}, spread, Budget()) == (
        f"; its timing is unstable (a few slow calls pull its mean to 4.7x its p50): {remedy}")
    both = {"stable": False, "drift_pct": 12.34, "mean_ms": 4.72, "p50_ms": 1.0}
    assert _doubts({}, both, Budget()) == (
        f"; its p50 is unstable (drifted 12.3 %; a few slow calls pull its mean to 4.7x its p50): {remedy}")
    assert _doubts({}, {"stable": True, "drift_pct": 12.34, "mean_ms": 4.72, "p50_ms": 1.0}, Budget()) == ""
