"""report.html: self-contained, escaped, every section, and what a real browser renders."""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.shared import load_report_run, rendered_report_run

REPO = Path(__file__).resolve().parents[1]
SCRIPT_NAME = '<script>alert("pwned")</script>'


@pytest.fixture(scope="module")
def page() -> str:
    folder, _ = rendered_report_run()
    return (folder / "report.html").read_text(encoding="utf-8")


def test_page_has_a_row_per_job_with_its_figures(page):
    results = load_report_run()
    body = page.split('<section id="results">')[1].split("</section>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1])
    assert len(rows) == len(results["jobs"])
    first = re.findall(r"<td[^>]*>(.*?)</td>", rows[0])
    assert first[:2] == ["mnist-mlp", "synthetic"]
    assert "0.9922" in first and "930.4" in first and "0.017 / 0.033" in first and "235,146" in first
    assert '<tr class="failed"><td>cnn3d-resnet</td>' in body and '<tr class="skipped"><td>mnist-cnn</td>' in body


def test_every_section_is_there(page):
    for anchor in ("results", "seeds", "pareto", "size", "curves", "latency", "variants", "reference", "failed",
                   "environment"):
        assert f'<section id="{anchor}">' in page, anchor
    seeds = page.split('<section id="seeds">')[1].split("</section>")[0]
    assert "0.9600 ± 0.0100" in seeds and "2/3" in seeds
    failed = page.split('<section id="failed">')[1].split("</section>")[0]
    assert "export" in failed and "loss is NaN at epoch 2" in failed
    assert "AMD EPYC" in page.split('<section id="environment">')[1]


def test_plots_are_embedded_png_images(page):
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    results = load_report_run()
    with_history = sum(1 for j in results["jobs"] if (j.get("train") or {}).get("history"))
    assert len(sources) == 3 + with_history
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_strings_from_plugins_are_escaped(page):
    assert "<script" not in page.lower()
    assert html.escape(SCRIPT_NAME, quote=True) in page
    assert "no calibration data &lt;b&gt;x&lt;/b&gt;" in page  # a variant's error text
    assert "aten::&lt;lambda&gt;&#x27; &amp; more" in page  # a failed job's error


def test_nothing_is_fetched_from_the_network(page):
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"<(?:link|script|iframe|object|embed)\b", page, re.I)


def test_a_plot_that_fails_is_named_and_the_page_still_written(tmp_path, monkeypatch):
    from harness import report_html

    def broken(results):
        raise ValueError("no axes <here>")

    monkeypatch.setattr(report_html, "plot_accuracy_vs_size", broken)
    results = load_report_run()
    for job in results["jobs"]:
        job["train"] = None
    path = report_html.write_html(tmp_path, results)
    text = path.read_text()
    assert "could not be drawn: ValueError: no axes &lt;here&gt;" in text
    assert text.count('src="data:image/png;base64,') == 2


def test_headless_chromium_renders_the_page(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from screenshot_report import find_chromium
    finally:
        sys.path.pop(0)
    if find_chromium() is None:
        pytest.skip("no Chromium here (apt-get install chromium) to render report.html")
    folder, _ = rendered_report_run()
    shot = tmp_path / "report.png"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(folder / "report.html"),
                             "-o", str(shot), "--width", "1400", "--height", "3000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 3000)
    assert len(data) > 100_000  # a blank page of that size compresses to a few KB

    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.std() > 0.05  # text, tables and plots, not an empty page
    top = pixels[:400]
    assert (top < 0.5).mean() > 0.005  # the dark heading and table text at the top rendered


def test_job_cards_say_how_much_memory_training_took(tmp_path):
    from harness import report_html

    results = load_report_run()
    trained = [job for job in results["jobs"] if isinstance(job.get("train"), dict)]
    trained[0]["train"].update(peak_memory_bytes=900 * 2**20, memory_at_start_bytes=650 * 2**20,
                               peak_memory_kind="job_peak_rss")
    trained[1]["train"].update(peak_memory_bytes=700 * 2**20, peak_memory_kind="cuda_max_allocated")
    trained[1]["train"].pop("memory_at_start_bytes", None)
    text = report_html.write_html(tmp_path, results).read_text()
    assert "peak memory 900 MiB, +250 MiB while training" in text
    assert "peak memory 700 MiB</p>" in text  # on a GPU there is no resident-set baseline


def test_the_throughput_column_says_it_comes_from_the_mean(page):
    latency = page.split('<section id="latency">')[1].split("</section>")[0]
    assert '<th class="num">samples/s (batch / mean)</th>' in latency
    assert "throughput at the mean latency (batch size / mean), not at the p50" in latency


def test_a_speed_up_not_comparable_is_a_dash_with_the_reason():
    from harness.report_html import to_html

    results = load_report_run()
    job = next(j for j in results["jobs"] if isinstance(j.get("train"), dict))
    job["reference"] = {"params": job["params"], "train_minutes": 7, "epochs": 20, "dataset": "mnist"}
    job["train"].update(seconds=5.1, epochs=1)
    results.update(jobs=[job], config={**results["config"], "max_train_samples": 256})
    reference = to_html(results, plots=[]).split('<section id="reference">')[1].split("</section>")[0]
    assert "82.4x" not in reference
    assert "<li>mnist-mlp@synthetic: training speed-up not comparable: 1 of 20 epochs, 256 samples, synthetic</li>" \
        in reference


def test_the_header_names_planned_jobs_that_never_ran_and_no_field_reads_none():
    from harness.report_html import to_html

    results = load_report_run()
    results.update(planned_jobs=[results["jobs"][0]["id"], "late@a"], interrupted=True,
                   jobs=[results["jobs"][0], {"model": "m", "dataset": "d"}])
    header = to_html(results, plots=[]).split("<nav>")[0]
    assert ("2 job(s): 1 ok, 0 failed, 0 skipped, 1 unknown; 1 of 2 planned not run (interrupted; "
            "continue with harness run --resume --run-id fixture-report): late@a.") in header
    page = to_html({"run_id": "bare", "jobs": [{"model": "m", "dataset": "d"}]}, plots=[])
    assert "None" not in page and "<td>unknown</td>" in page


def _sweep_points(n: int) -> list[dict]:
    return [{"label": f"mnist-fast [lr={i / 100:g}]", "dataset": "mnist", "kind": "fp32", "job": f"j{i}",
             "accuracy": 0.9 + (i % 7) / 100, "p50_ms": 0.1 + i / 50, "pareto": i in (0, 3)} for i in range(n)]


def test_a_crowded_plot_numbers_the_points_it_does_not_label_and_keys_them():
    from harness.report_html import KEY_LINES, _point_names

    points = _sweep_points(12)
    names, numbered, key = _point_names(points, "p50_ms", pareto=True)
    assert set(names) == set(range(12))  # every point has a label or a number
    labelled = set(range(12)) - numbered
    assert {0, 3} <= labelled and names[0] == "mnist-fast [lr=0]"
    assert sorted(int(names[i]) for i in numbered) == list(range(1, len(numbered) + 1))
    by_number = {int(names[i]): points[i]["label"] for i in numbered}
    assert key == sorted(by_number.items())
    # numbered left to right
    assert [points[i]["p50_ms"] for i in sorted(numbered, key=lambda i: int(names[i]))] == \
        sorted(points[i]["p50_ms"] for i in numbered)

    few = _point_names(_sweep_points(8), "p50_ms", pareto=True)
    assert few[1] == set() and few[2] == [] and len(few[0]) == 8  # a few points: all labelled, no key

    many = _point_names(_sweep_points(KEY_LINES + 20), "p50_ms", pareto=True)
    assert len(many[2]) == len(many[1]) > KEY_LINES  # every number has its label, however many


def test_a_key_longer_than_the_plot_shows_is_listed_under_the_plot_in_both_reports(tmp_path, monkeypatch):
    from harness import report_html
    from harness.report import write_reports
    from harness.report_html import KEY_LINES, Drawing, _key_lines, _scatter

    drawn = _scatter(_sweep_points(KEY_LINES + 20), "p50_ms", "p50", "t", front=True)
    assert isinstance(drawn, Drawing)
    lines = _key_lines(drawn.numbered)
    hidden = len(drawn.numbered) - KEY_LINES
    assert len(lines) == KEY_LINES + 1 and lines[-1] == f"... and {hidden} more, listed under the plot"

    monkeypatch.setattr(report_html, "plot_accuracy_vs_latency", lambda results: drawn)
    small = _scatter(_sweep_points(12), "p50_ms", "p50", "t", front=True)
    monkeypatch.setattr(report_html, "plot_accuracy_vs_size", lambda results: small)
    write_reports(tmp_path, load_report_run())
    last_number, last_label = drawn.numbered[-1]
    markdown, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert f"The plot's {len(drawn.numbered)} numbered points:" in markdown
    assert f"{last_number:>4}  {last_label}" in markdown
    assert f"The {len(drawn.numbered)} numbered points" in page and f"{last_number:>4}  {last_label}" in page
    # A key the image holds whole is not repeated.
    assert markdown.count("numbered points:") == 1 and page.count("numbered points</summary>") == 1


def test_a_crowded_plot_is_drawn_wider_with_its_key():
    import io

    from matplotlib.image import imread

    from harness.report_html import _scatter

    crowded = imread(io.BytesIO(_scatter(_sweep_points(20), "p50_ms", "p50", "t", front=True).png))
    plain = imread(io.BytesIO(_scatter(_sweep_points(6), "p50_ms", "p50", "t", front=True).png))
    assert crowded.shape[0] == plain.shape[0] and crowded.shape[1] > plain.shape[1] * 1.2
