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
    # the first cell is the row's header; a starred figure's spoken "(unstable)" is for screen readers only
    first = [re.sub(r'<span class="vh">[^<]*</span>', "", cell)
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", rows[0])]
    assert first[:2] == ["mnist-mlp", "synthetic"]
    assert "0.9922" in first and "930.4" in first and "235,146" in first
    from harness.report import results_table

    # every cell as the table shared with report.md has it (its number formats are report.py's to test)
    assert first == [html.escape(cell, quote=True) for cell in results_table(results).rows[0]]
    assert '<tr class="failed"><th scope="row">cnn3d-resnet</th>' in body
    assert '<tr class="skipped"><th scope="row">mnist-cnn</th>' in body


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
    assert '<th scope="col" class="num">samples/s (batch / mean)</th>' in latency
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
    assert "<li>mnist-mlp@synthetic: not comparable with the published figures: 1 of 20 epochs, 256 training samples, synthetic, not mnist</li>" \
        in reference


def test_the_header_names_planned_jobs_that_never_ran_and_no_field_reads_none():
    from harness.report_html import to_html

    results = load_report_run()
    results.update(planned_jobs=[results["jobs"][0]["id"], "late@a"], interrupted=True,
                   jobs=[results["jobs"][0], {"model": "m", "dataset": "d"}])
    header = to_html(results, plots=[]).split("<nav>")[0]
    assert ("2 job(s): 1 ok, 0 failed, 0 skipped, 1 unknown; 1 of 2 planned not run (interrupted; "
            "continue with harness run --resume --run-id fixture-report): late@a.") in header
    moved = to_html(results, plots=[], run_dir="downloads/copy-of-run").split("<nav>")[0]  # as report.html gets it
    assert "continue with harness run --resume --run-id copy-of-run --out downloads): late@a." in moved
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
    # A key the image holds is listed in full too: the image shortens names.
    assert f"The plot's {len(small.numbered)} numbered points:" in markdown
    assert markdown.count("numbered points:") == 2 and page.count("numbered points, in full</summary>") == 2


def test_a_crowded_plot_is_drawn_wider_with_its_key():
    import io

    from matplotlib.image import imread

    from harness.report_html import _scatter

    crowded = imread(io.BytesIO(_scatter(_sweep_points(20), "p50_ms", "p50", "t", front=True).png))
    plain = imread(io.BytesIO(_scatter(_sweep_points(6), "p50_ms", "p50", "t", front=True).png))
    assert crowded.shape[0] == plain.shape[0] and crowded.shape[1] > plain.shape[1] * 1.2


# -- labels that print over each other, series that look alike ------------------------------------------------

# The points of a real run's accuracy-vs-latency plot whose labels printed over each other:
# (label, dataset, p50 ms, accuracy, on the Pareto front).
WALK_MATRIX = [
    ("mnist-mlp", "synthetic", 0.017857, 0.798828125, True),
    ("mnist-lightweight-attention", "synthetic", 0.03378, 0.208984375, False),
    ("mnist-baseline-20k", "synthetic", 0.073534, 0.099609375, False),
    ("mnist-ultralight-cnn", "synthetic", 0.076063, 0.099609375, False),
    ("mnist-enhanced-20k", "synthetic", 0.076128, 0.1015625, False),
    ("mnist-residual-20k", "synthetic", 0.076489, 0.140625, False),
    ("mnist-wide-20k", "synthetic", 0.088912, 0.109375, False),
    ("mnist-cnn", "synthetic", 0.096519, 0.861328125, True),
    ("mnist-fast", "synthetic", 0.162111, 0.1015625, False),
    ("mnist-cake-cnn", "synthetic", 0.190092, 0.1015625, False),
    ("mwnn-rgb-only", "synthetic", 0.467193, 0.111328125, False),
    ("mwnn-resnet-baseline", "synthetic", 0.467784, 0.146484375, False),
    ("cnn3d-sequential", "synthetic3d", 0.479862, 0.62109375, True),
    ("mwnn-medium", "synthetic", 0.89681, 0.1015625, False),
    ("mwnn-dual", "synthetic", 0.933946, 0.1015625, False),
    ("mwnn-shallow", "synthetic", 1.00376, 0.109375, False),
    ("mnist-rough-cnn", "synthetic", 3.424597, 0.107421875, False),
    ("cnn3d-resnet", "synthetic3d", 5.079898, 0.09765625, False),
]


def _points(rows) -> list[dict]:
    return [{"label": label, "dataset": dataset, "kind": "fp32", "job": label, "accuracy": accuracy, "p50_ms": p50,
             "pareto": pareto} for label, dataset, p50, accuracy, pareto in rows]


def _cluster(n: int, far: int = 3) -> list[dict]:
    """``n`` models within a few pixels of each other (each its own model, so each would be named), and a few
    far from them so the axes do not zoom in on the cluster."""
    rows = [(f"net-{i} [width={8 * i}]", "mnist", 0.08 + (i % 5) * 0.0004, 0.9 + (i % 4) * 0.0005, i == 0)
            for i in range(n)]
    rows += [(f"far-{i}", "mnist", 0.5 + i, 0.4 + i / 10, False) for i in range(far)]
    return _points(rows)


def _drawn(monkeypatch, draw):
    """``draw()``'s result and the figures it turned into PNG images."""
    from harness import report_html

    figures, png = [], report_html._png

    def keep(fig):
        figures.append(fig)
        return png(fig)

    monkeypatch.setattr(report_html, "_png", keep)
    return draw(), figures


def _label_boxes(fig):
    """The main axes and ``(text, box)`` of each label drawn on it: the text alone, not its leader line."""
    from matplotlib.text import Text

    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    return ax, [(t.get_text(), Text.get_window_extent(t, renderer)) for t in ax.texts]


def _overlap(a, b) -> bool:
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


@pytest.mark.parametrize("points", [_points(WALK_MATRIX), _cluster(6, far=2), _cluster(14), _cluster(45)],
                         ids=["walk-matrix", "six-in-a-cluster", "fourteen-in-a-cluster", "forty-five-in-a-cluster"])
def test_no_two_labels_of_a_scatter_overlap_and_every_point_is_named_or_keyed(monkeypatch, points):
    from harness.report_html import _scatter

    drawing, figures = _drawn(monkeypatch, lambda: _scatter(points, "p50_ms", "p50 ms", "t", front=True))
    ax, labels = _label_boxes(figures[0])
    for n, (text, box) in enumerate(labels):
        for other, other_box in labels[n + 1:]:
            assert not _overlap(box, other_box), f"{text!r} prints over {other!r}"
        assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1, text
        legend = ax.get_legend()
        if legend is not None:
            assert not _overlap(box, legend.get_window_extent(figures[0].canvas.get_renderer())), text
    # Each point is named on the plot, or numbered there and listed in the key under that number.
    named = [text for text, _ in labels if not text.isdigit()]
    numbers = sorted(int(text) for text, _ in labels if text.isdigit())
    assert numbers == list(range(1, len(drawing.numbered) + 1)) == [n for n, _ in drawing.numbered]
    assert len(named) + len(numbers) == len(points)
    assert sorted(named + [label for _, label in drawing.numbered]) == sorted(p["label"] for p in points)
    # A plot with numbers has the key column beside its axes.
    assert (len(figures[0].axes) == 2) == bool(drawing.numbered)


def test_a_label_that_has_room_stays_beside_its_point_and_an_uncrowded_plot_has_no_key(monkeypatch):
    from harness.report_html import _scatter

    points = _sweep_points(6)
    drawing, figures = _drawn(monkeypatch, lambda: _scatter(points, "p50_ms", "p50 ms", "t", front=True))
    ax, labels = _label_boxes(figures[0])
    assert drawing.numbered == [] and len(figures[0].axes) == 1
    assert sorted(text for text, _ in labels) == sorted(p["label"] for p in points)
    # As before: each name just above or below its point, to its right or (near the right end) its left,
    # with no leader line; neighbours alternate above and below.
    above = []
    for point in points:
        x, y = ax.transData.transform((point["p50_ms"], point["accuracy"]))
        box = dict(labels)[point["label"]]
        assert 0 < box.x0 - x < 15 or 0 < x - box.x1 < 15, point["label"]
        assert 0 < box.y0 - y < 10 or 0 < y - box.y1 < 10, point["label"]
        above.append(box.y0 > y)
    assert all(t.arrow_patch is None for t in ax.texts)
    assert True in above and False in above


def test_a_crowded_scatter_numbers_its_points_left_to_right(monkeypatch):
    from harness.report_html import _scatter

    points = _cluster(14)
    drawing, _ = _drawn(monkeypatch, lambda: _scatter(points, "p50_ms", "p50 ms", "t", front=True))
    by_label = {p["label"]: p for p in points}
    xs = [(by_label[label]["p50_ms"], -by_label[label]["accuracy"]) for _, label in drawing.numbered]
    assert xs == sorted(xs) and len(xs) >= 10  # the cluster's names found no room: most are numbered


def _latency_run(n: int) -> dict:
    def rows(p50):
        return [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": b, "threads": 1,
                 "p50_ms": p50 * b, "throughput_per_s": 1000 / p50} for b in (1, 8, 32)]

    return {"run_id": "r", "jobs": [{"id": f"m{i}@d", "model": f"model-{i}", "dataset": "d",
                                     "latency": rows(0.1 + i / 100)} for i in range(n)]}


@pytest.mark.parametrize("n", [6, 12, 30, 40])
def test_every_latency_series_has_its_own_colour_marker_and_line_style(monkeypatch, n):
    from matplotlib.colors import to_hex

    from harness.report_html import SERIES_COLORS, plot_latency_vs_batch

    _, figures = _drawn(monkeypatch, lambda: plot_latency_vs_batch(_latency_run(n)))
    fig = figures[0]
    palette = {to_hex(color) for color in SERIES_COLORS}
    for ax in fig.axes:
        styles = [(to_hex(line.get_color()), line.get_marker(), line.get_linestyle()) for line in ax.get_lines()]
        assert len(styles) == n and len(set(styles)) == n
        # Ten distinct hues: no light and dark shades of one hue (tab20's pairs) to tell apart.
        assert {color for color, _, _ in styles} <= palette
    legend = fig.legends[0]
    assert len(legend.get_texts()) == n
    box, figure_box = legend.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1  # every entry inside the image


def test_every_variant_kind_plotted_gets_its_own_marker():
    from harness.report_html import variant_marker

    kinds = ["fp32", "fp16", "int8-dynamic", "int8-static", "ort-opt", "slim", "plugin-a", "plugin-b"]
    markers = [variant_marker(kind, kinds) for kind in kinds]
    assert len(set(markers)) == len(kinds), dict(zip(kinds, markers))  # ort-opt and slim were both "D"


def test_a_run_loads_the_report_modules_up_front_and_the_page_is_never_skipped_quietly():
    # A run that lasts hours: an upgrade in between must not leave report.py and report_html.py out of step
    # (report_html's import failed at the end, and a fallback wrote report.md alone, without a word).
    import inspect
    import subprocess
    import sys

    from harness import report

    code = ("import sys; from harness.cli import _import_run_modules; _import_run_modules(); "
            "print('harness.report_html' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
    assert "except ImportError" not in inspect.getsource(report._write_reports)



# -- the review of the page (findings A1-A10) ----------------------------------------------------------------


def _section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', page)


def _css_rule(selector: str) -> str:
    from harness.report_html import CSS

    return re.search(rf"^{re.escape(selector)} \{{([^}}]*)\}}", CSS, re.MULTILINE).group(1)


def test_a_table_header_sticks_inside_a_box_that_scrolls_up_and_down():
    # overflow-x alone made the box the sticky header's container without ever scrolling it: the header
    # left the screen with the page.
    box, header = _css_rule(".scroll"), _css_rule("th")
    assert "overflow: auto" in box and "max-height:" in box
    assert "position: sticky" in header and "top: 0" in header


def _probed_in_chromium(tmp_path, table_html: str, probe_js: str, window: str, css: str | None = None) -> list[float]:
    """The numbers ``probe_js`` (a script ending ``p.textContent = [...].join(' ')`` on a ``pre``) reads from a
    page of ``table_html`` with the reports' CSS (or ``css``), laid out by headless Chromium in a ``window``
    (``W,H``)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from screenshot_report import find_chromium
    finally:
        sys.path.pop(0)
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium here (apt-get install chromium) to lay a table out")
    from harness.report_html import CSS

    probe = (f"<script>const box = document.querySelector('.scroll'); const p = document.createElement('pre');"
             f"p.id = 'probe'; {probe_js}; document.body.appendChild(p);</script>")
    page = tmp_path / "table.html"
    page.write_text(f"<!DOCTYPE html><html><head><style>{css or CSS}</style></head><body>{table_html}{probe}</body></html>")
    out = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
                          f"--window-size={window}", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [float(x) for x in re.search(r'<pre id="probe">([^<]*)', out).group(1).split()]


def test_a_long_table_keeps_its_header_in_view_in_chromium(tmp_path):
    from harness.report import Table
    from harness.report_html import html_table

    table = html_table(Table(["model", "p50 ms"], [[f"m{i}", f"{i}.0"] for i in range(200)], {1}))
    # The probe scrolls the table's box to row 150 and says where the header and that row are.
    probe = ("const rows = box.querySelectorAll('tbody tr'); box.scrollTop = rows[150].offsetTop;"
             "p.textContent = [box.scrollTop, box.getBoundingClientRect().top, box.getBoundingClientRect().height,"
             "box.querySelector('th').getBoundingClientRect().top, innerHeight].join(' ')")
    scrolled, box_top, box_height, header_top, view = _probed_in_chromium(tmp_path, table, probe, "1000,800")
    assert scrolled > 1000 and box_height <= view  # the box scrolled, and fits the window
    assert abs(header_top - box_top) < 1  # and its header stayed at its top


def test_a_wide_edge_table_with_worded_figures_fits_a_wide_window_in_chromium(tmp_path):
    """'1.00x (alternating, unstable)' kept on one line widened the edge table past a 1400-pixel window, and
    its note column went out of sight behind the scroll bar."""
    from harness.report import Table
    from harness.report_html import html_table

    headers = ["model", "dataset", "variant", "accuracy", "drop vs fp32 (points)", "ONNX KiB", "activations KiB",
               "threads", "p50 ms", "p99 ms", "time vs fp32", "cold ms", "RAM KiB", "params", "MFLOPs",
               "fits budget", "note"]
    row = ["mnist-enhanced-20k", "mnist", "int8-static", "0.6360", "0.00", "79.4", "98.0", "1", "0.0813*",
           "0.1417", "1.00x (alternating, unstable)", "2.7", "1,636", "19,306", "3.85", "yes",
           "not ranked by an unstable ratio to fp32: int8-dynamic (slower on its own p50 than a variant measured "
           "steadily); " * 3]
    table = html_table(Table(headers, [row, row], set(range(3, 15))))
    assert 'class="num words">1.00x (alternating, unstable)<' in table and 'class="num">0.0813*<' in table
    scroll_width, client_width = _probed_in_chromium(
        tmp_path, table, "p.textContent = [box.scrollWidth, box.clientWidth].join(' ')", "1400,800")
    assert scroll_width <= client_width, (scroll_width, client_width)  # nothing to scroll to: the note is in view


def test_failed_jobs_come_right_after_the_results_and_the_header_links_them(page):
    assert _section_ids(page)[:2] == ["results", "failed"]
    header = page.split("<nav")[0]
    assert '<a class="bad" href="#failed">2 failed</a>' in header and '<a href="#failed">1 skipped</a>' in header
    assert "color: var(--error)" in _css_rule(".facts a.bad") and "--error: #a02020" in _css_rule(":root")
    assert 'href="#failed">0' not in header  # a count of none links nowhere


def test_a_header_with_no_failures_has_no_link():
    from harness.report import Table
    from harness.report_html import _linked_facts

    facts = ["3 job(s): 3 ok, 0 failed, 0 skipped.", "Data: 10 failed attempts & more."]
    assert _linked_facts(facts, Table([], [])) == ["3 job(s): 3 ok, 0 failed, 0 skipped.",
                                                   "Data: 10 failed attempts &amp; more."]
    assert _linked_facts(["4 job(s): 1 ok, 1 failed, 2 skipped.", "1 failed"],
                         Table(["status"], [["failed"]], classes=["failed"])) == \
        ['4 job(s): 1 ok, <a class="bad" href="#failed">1 failed</a>, 2 skipped.', "1 failed"]


def _grid_labels(model: str = "mnist-mlp") -> list[str]:
    return [f"{model} [batch_size={b}, dropout={d}, seed={s}]"
            for b in (16, 32, 64, 128) for d in (0.01, 0.05, 0.1) for s in (0, 1, 2)]


@pytest.mark.parametrize("model", ["mnist-mlp", "mnist-ultralight-cnn", "run-2026-eager: mnist-ultralight-cnn"])
def test_the_key_beside_a_crowded_plot_keeps_every_sweep_setting(model):
    # Cut in the middle at 44 characters, 'mnist-mlp [batch_size=…dropout=0.05, seed=0]' read the same for
    # every batch size.
    from harness.report_html import KEY_LINES, _key_lines

    labels = _grid_labels(model)
    lines = _key_lines(list(enumerate(labels, 1)))
    assert len(lines) <= KEY_LINES + 1
    entries, shown = [], 0
    for line in lines:
        if line.startswith("... and "):
            assert line == f"... and {len(labels) - shown} more, listed under the plot"
        elif line[:3].strip():
            entries.append(line[5:])
            shown += 1
        else:
            entries[-1] += " " + line.strip()
    assert len(set(entries)) == len(entries) == shown > 0
    for entry, label in zip(entries, labels):
        assert label[label.index(" ["):] in entry.replace("  ", " ")


def test_a_long_name_on_a_scatter_keeps_its_settings():
    from harness.report_html import _name, _short

    label = "mnist-ultralight-cnn [batch_size=64, dropout=0.01, seed=1]"
    assert _name(label) == "mnist-ultralight-cnn\n[batch_size=64, dropout=0.01, seed=1]"
    assert _short(label, 48) == "mnist…-cnn [batch_size=64, dropout=0.01, seed=1]"
    assert _short(label + " int8-dynamic", 60).endswith("[batch_size=64, dropout=0.01, seed=1] int8-dynamic")
    assert _short("x" * 70, 10) == "xxxxx…xxxx" and _name("short [a=1]") == "short [a=1]"


def test_every_numbered_plot_lists_its_points_in_full_under_it(tmp_path, monkeypatch):
    from harness import report_html

    drawn = report_html._scatter(_sweep_points(12), "p50_ms", "p50", "t", front=True)
    assert 0 < len(drawn.numbered) <= report_html.KEY_LINES
    monkeypatch.setattr(report_html, "plot_accuracy_vs_latency", lambda results: drawn)
    results = load_report_run()
    for job in results["jobs"]:
        job["train"] = None
    plots = report_html.render_plots(results)
    assert next(p for p in plots if p.key == "accuracy_vs_latency").numbered == drawn.numbered
    page = report_html.to_html(results, plots)
    assert f"The {len(drawn.numbered)} numbered points, in full</summary>" in page


def _joined_run() -> dict:
    results = load_report_run()
    jobs = [j for j in results["jobs"] if j.get("status") == "ok" and j["dataset"] == "synthetic"][:3]
    # no variants: the marker, which tells them apart, is the run's then
    results["jobs"] = [{**j, "run_id": run, "variants": []} for run in ("fast-eager", "fast-graphs") for j in jobs]
    return results


def test_a_joined_report_colours_and_marks_each_point_by_its_run(monkeypatch):
    from harness.report import candidates
    from harness.report_html import plot_accuracy_vs_latency, plot_accuracy_vs_size

    results = _joined_run()
    assert {c["run"] for c in candidates(results)} == {"fast-eager", "fast-graphs"}
    assert {c["run"] for c in candidates(load_report_run())} == {None}
    for plot in (plot_accuracy_vs_latency, plot_accuracy_vs_size):
        _, figures = _drawn(monkeypatch, lambda: plot(results))  # noqa: B023 - called at once
        ax = figures[-1].axes[0]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert {"fast-eager", "fast-graphs"} <= set(legend)
        drawn = [c for c in ax.collections if len(c.get_offsets()) and c.get_facecolors().any()
                 and c.get_facecolors()[0][3] > 0]
        assert len(drawn) == 2 and sum(len(c.get_offsets()) for c in drawn) == 6  # a group of 3 per run
        colours = {tuple(c.get_facecolors()[0][:3]) for c in drawn}
        shapes = {c.get_paths()[0].vertices.tobytes() for c in drawn}
        assert len(colours) == 2 and len(shapes) == 2


def test_neighbouring_series_differ_in_marker_and_line_style_not_only_hue():
    from harness.report_html import _series_styles

    styles = _series_styles(6)
    assert len({marker for _, marker, _ in styles}) == 6
    assert len({line for _, _, line in styles[:4]}) == 4


@pytest.mark.parametrize("low, high", [(11000, 45000), (5100, 7900), (11000, 19000), (0.05, 1), (0.3, 2)])
def test_a_short_log_axis_labels_at_least_three_ticks(low, high):
    from harness.report_html import _figure, _plain_log_axis

    fig = _figure(4, 4)
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    _plain_log_axis(ax, "y")
    fig.draw_without_rendering()
    shown = [t.get_text() for t in ax.yaxis.get_ticklabels(which="both")
             if t.get_text() and low <= t.get_position()[1] <= high]
    assert len(shown) >= 3, shown  # 11,000 to 45,000 had one label, "20000"
    assert all(float(text) > 0 for text in shown)


def test_the_latency_figure_says_its_axes_are_logarithmic(monkeypatch):
    from harness.report_html import plot_latency_vs_batch

    _, figures = _drawn(monkeypatch, lambda: plot_latency_vs_batch(_latency_run(3)))
    for ax in figures[0].axes:
        assert ax.get_ylabel().endswith(", log scale") and ax.get_xlabel() == "batch size, log scale"


def test_no_figure_is_drawn_that_would_hold_one_value_per_line():
    from harness.report_html import plot_curves, plot_latency_vs_batch, to_html

    one_batch = _latency_run(3)
    for job in one_batch["jobs"]:
        job["latency"] = [r for r in job["latency"] if r["batch_size"] == 1]
    assert plot_latency_vs_batch(one_batch) is None
    results = load_report_run()
    job = next(j for j in results["jobs"] if (j.get("train") or {}).get("history"))
    job["train"]["history"] = job["train"]["history"][:1]
    assert plot_curves(job) is None
    # the card shows its one epoch's figures open instead
    results["jobs"] = [job]
    card = to_html(results).split('<section id="curves">')[1].split("</section>")[0]
    assert "<details open><summary>per-epoch figures</summary>" in card and "<img" not in card


def test_each_plot_links_to_its_png_and_a_phone_gets_the_width(page):
    folder, _ = rendered_report_run()
    linked = re.findall(r'<a href="(plots/[^"]+\.png)"><img ', page)
    assert len(linked) == len(re.findall(r"<img ", page)) > 0
    assert all((folder / href).is_file() for href in linked)
    from harness.report_html import CSS

    phone = CSS.split("@media (max-width: 600px) {")[1]
    assert re.search(r"body \{ padding: \d+px \d+px", phone) and "tbody tr > :first-child { min-width: 96px; }" in phone


def test_captions_and_notes_say_only_what_the_reader_can_see():
    from harness.report_html import to_html

    results = load_report_run()
    for job in results["jobs"]:
        job["variants"] = []
    page = to_html(results)
    assert "Grey lines join" not in page.split('<section id="size">')[1].split("</section>")[0]
    # the long latency table folds away with the note that explains its columns
    latency = page.split('<section id="latency">')[1].split("</section>")[0]
    assert "throughput at the mean latency" in latency.split("<details")[1].split("</details>")[0]


def test_a_seed_sweep_draws_one_latency_line_per_point_the_median_of_its_seeds(monkeypatch):
    """72 jobs of a seed sweep drew 72 tangled lines and a 72-row legend that squeezed both panels."""
    from harness.report_html import plot_latency_vs_batch

    def job(model, seed, p50):
        return {"id": f"{model}@d#seed={seed}", "model": model, "dataset": "d", "point": {"seed": seed},
                "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": b,
                             "threads": 1, "p50_ms": p50 * b, "throughput_per_s": 1000 / p50} for b in (1, 8)]}

    swept = {"run_id": "r", "jobs": [job("a", s, p) for s, p in enumerate((1.0, 2.0, 9.0))] + [job("b", 0, 3.0)]}
    _, figures = _drawn(monkeypatch, lambda: plot_latency_vs_batch(swept))
    left = figures[0].axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in left.get_lines()}
    assert lines == {"a (median of 3 seeds) (t1)": [2.0, 16.0], "b [seed=0] (t1)": [3.0, 24.0]}


# -- large sweeps (reviewV F1, F3, F6): bounded labels, legends and figures ----------------------------------

def _report_scale():
    """benchmarks/report_scale.py, whose jitter (each latency, size and FLOPs figure scaled by a factor of its
    own, every accuracy moved a little) makes these sweeps as it makes the benchmark's: one for both."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report_scale", REPO / "benchmarks" / "report_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _big_run(n: int, seed: int = 0) -> dict:
    """A run of ``n`` finished jobs built from the fixture's (nothing trained): each a copy of one of its
    finished jobs under a new id and sweep point (``width``: no two in one seed group), figures jittered."""
    import copy
    import random

    rng, jitter = random.Random(seed), _report_scale()._jitter
    results = load_report_run()
    finished = [j for j in results["jobs"] if j.get("status") == "ok" and "<" not in j["id"]]
    jobs = []
    for i in range(n):
        job = jitter(copy.deepcopy(finished[i % len(finished)]), rng)
        job["point"] = {"width": i}
        job["id"] = f"{job['model']}@{job['dataset']}#width={i}"
        jobs.append(job)
    results["jobs"] = jobs
    return results


def _count_calls(monkeypatch, name):
    from harness import report_html

    calls, real = [], getattr(report_html, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(report_html, name, counted)
    return calls


def test_a_scatter_of_many_points_labels_at_most_the_limit_and_its_key_counts_the_rest(monkeypatch):
    from harness.report import candidates
    from harness.report_html import LABEL_LIMIT, plot_accuracy_vs_latency

    results = _big_run(80)
    points = [c for c in candidates(results) if c["accuracy"] is not None and c["p50_ms"]]
    assert len(points) > LABEL_LIMIT + 20
    spots = _count_calls(monkeypatch, "_spot")
    drawing, figures = _drawn(monkeypatch, lambda: plot_accuracy_vs_latency(results))
    _, labels = _label_boxes(figures[0])
    assert len(labels) == LABEL_LIMIT  # a name or a number each; the others are plain markers
    assert drawing.points == len(points) and drawing.unlabelled == len(points) - LABEL_LIMIT
    named = {text for text, _ in labels if not text.isdigit()}
    keyed = {label for _, label in drawing.numbered}
    assert len(named) + len(keyed) == LABEL_LIMIT
    # the Pareto front is labelled first
    from harness.report_html import _name

    for c in points:
        if c["pareto"]:
            assert c["label"] in keyed or _name(c["label"]) in named, c["label"]
    key = figures[0].axes[1].texts[0].get_text().replace("\n", " ")
    assert f"{drawing.unlabelled} of the {len(points)} points are unlabelled" in key
    assert "results.csv" in key
    # The work is bounded by the labels, not the points: each label looks for a spot three times at most
    # (a name twice, when the plot is redrawn wider), whatever the number of points.
    assert 0 < len(spots) <= 3 * LABEL_LIMIT


def test_a_scatter_of_the_limit_or_fewer_labels_every_point():
    from harness.report_html import LABEL_LIMIT, _chosen, _scatter

    points = _sweep_points(LABEL_LIMIT)
    assert _chosen(points, "p50_ms", True) == list(range(LABEL_LIMIT))
    drawing = _scatter(_sweep_points(12), "p50_ms", "p50", "t", front=True)
    assert drawing.unlabelled == 0


def test_the_labelled_points_of_a_crowded_scatter_are_the_front_then_each_models_best_then_the_most_accurate():
    from harness.report_html import LABEL_LIMIT, _chosen

    n = LABEL_LIMIT + 40
    points = [{"label": f"m{i % 3} [lr={i}]", "dataset": "d", "kind": "fp32", "accuracy": (i * 37 % n) / n,
               "p50_ms": 1 + i, "pareto": i in (5, 90)} for i in range(n)]
    chosen = _chosen(points, "p50_ms", front=True)
    assert len(chosen) == LABEL_LIMIT and chosen == sorted(chosen)
    assert {5, 90} <= set(chosen)
    best = {max((i for i in range(n) if i % 3 == m), key=lambda i: points[i]["accuracy"]) for m in range(3)}
    assert best <= set(chosen)
    rest = sorted(set(range(n)) - {5, 90} - best, key=lambda i: -points[i]["accuracy"])
    assert set(chosen) == {5, 90} | best | set(rest[:LABEL_LIMIT - 2 - len(best)])


def test_the_page_of_a_big_sweep_says_how_many_points_are_unlabelled(tmp_path, monkeypatch):
    from harness import report_html
    from harness.report import candidates, write_reports
    from harness.report_html import LABEL_LIMIT

    for name in ("plot_accuracy_vs_latency", "plot_accuracy_vs_flops", "plot_latency_vs_batch", "plot_curves"):
        monkeypatch.setattr(report_html, name, lambda results: None)  # each its own test
    results = _big_run(70)
    write_reports(tmp_path, results)
    page = (tmp_path / "report.html").read_text()
    points = sum(1 for c in candidates(results) if c["accuracy"] is not None and c["bytes"])
    size = page.split('<section id="size">')[1].split("</section>")[0]
    assert re.search(rf"{points - LABEL_LIMIT} of the plot&#x27;s {points} points are drawn without a name or "
                     r"number.*results\.csv and the tables list every job", size)
    assert "without a name or number" not in page.split('<section id="size">')[0]


def test_spot_gives_the_same_answer_however_its_comparisons_are_chunked(monkeypatch):
    import numpy as np

    from harness import report_html
    from harness.report_html import _Room, _spot

    rng = np.random.default_rng(3)
    others = rng.uniform(0, 200, size=(120, 2))
    boxes = [(x - 4, y - 4, x + 4, y + 4) for x, y in others]
    texts = [(x, y, x + 30, y + 8) for x, y in rng.uniform(0, 200, size=(10, 2))]
    leaders = [tuple(v) for v in rng.uniform(0, 200, size=(6, 4))]
    room = _Room(boxes + texts, texts, leaders)
    area = (0.0, 0.0, 200.0, 200.0)
    asked = [((30.0, 8.0), tuple(at), reach, strict) for at in rng.uniform(20, 180, size=(5, 2))
             for reach, strict in ((22.0, True), (100.0, False), (None, False))]
    whole = [_spot(size, at, room, area, [(at[0] + 9, at[1] + 1)], reach, 1.39, others, strict)
             for size, at, reach, strict in asked]
    monkeypatch.setattr(report_html, "CHUNK_CELLS", 1000)
    assert [_spot(size, at, room, area, [(at[0] + 9, at[1] + 1)], reach, 1.39, others, strict)
            for size, at, reach, strict in asked] == whole
    assert any(w is not None for w in whole)


def test_the_least_crowded_spot_is_the_one_the_rule_picks():
    import random

    from harness.report_html import _least_crowded

    rng = random.Random(5)
    for _ in range(20):
        at = (rng.uniform(0, 100), rng.uniform(0, 100))
        taken = [(x, y, x + rng.uniform(2, 30), y + rng.uniform(2, 10))
                 for x, y in ((rng.uniform(-20, 120), rng.uniform(-20, 120)) for _ in range(60))]
        best = None
        for dy in range(-12, 13, 2):  # the rule, one offset at a time
            for dx in range(-12, 13, 2):
                x0, y0 = at[0] + dx * 1.39 - 15, at[1] + dy * 1.39 - 4
                hits = sum(x0 < t[2] and x0 + 30 > t[0] and y0 < t[3] and y0 + 8 > t[1] for t in taken)
                if best is None or (hits, abs(dx) + abs(dy), dy, dx) < best[0]:
                    best = ((hits, abs(dx) + abs(dy), dy, dx), (x0, y0, True))
        assert _least_crowded((30.0, 8.0), at, taken, 1.39) == pytest.approx(best[1])


def test_the_latency_legend_of_a_big_sweep_names_the_most_accurate_and_greys_the_rest(monkeypatch):
    from matplotlib.colors import to_hex

    from harness.report_html import BACKGROUND_GREY, SERIES_LIMIT, plot_latency_vs_batch

    extra = 25
    results = _latency_run(SERIES_LIMIT + extra)
    for i, job in enumerate(results["jobs"]):
        job["status"] = "ok"
        job["metrics"] = {"accuracy": (i * 7 % len(results["jobs"])) / 100}
    _, figures = _drawn(monkeypatch, lambda: plot_latency_vs_batch(results))
    fig = figures[0]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(texts) == SERIES_LIMIT + 1 and texts[-1].startswith(f"{extra} more, in grey")
    # the Pareto models' lines first (the fastest here), then the most accurate
    from harness.report import candidates

    front = {c["job"] for c in candidates(results) if c["pareto"]}
    assert 0 < len(front) < SERIES_LIMIT
    ranked = sorted(results["jobs"], key=lambda j: (j["id"] not in front, -j["metrics"]["accuracy"]))
    assert {t.split(" ")[0] for t in texts[:-1]} == {j["model"] for j in ranked[:SERIES_LIMIT]}
    for ax in fig.axes:
        grey = [line for line in ax.get_lines() if to_hex(line.get_color()) == to_hex(BACKGROUND_GREY) and len(line.get_xdata())]
        assert len(grey) == extra
        styles = {(to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
                  for line in ax.get_lines() if line not in grey and len(line.get_xdata())}
        assert len(styles) == SERIES_LIMIT
    # the figure stays as tall as it is for the limit's legend, and the legend inside it
    assert fig.get_size_inches()[1] <= 1.0 + 0.15 * (SERIES_LIMIT + 1) + 1e-9
    box = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1


PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==")


def test_a_sweep_of_many_trained_jobs_draws_the_most_accurates_curves_and_links_them(tmp_path, monkeypatch):
    from harness import report_html
    from harness.report import write_reports
    from harness.report_html import CURVES_LIMIT, EMBED_CURVES

    drawn = []
    monkeypatch.setattr(report_html, "plot_curves", lambda job: drawn.append(job["id"]) or PIXEL)
    for name in ("plot_accuracy_vs_latency", "plot_accuracy_vs_size", "plot_accuracy_vs_flops"):
        monkeypatch.setattr(report_html, name, lambda results: report_html.Drawing(PIXEL, []))
    monkeypatch.setattr(report_html, "plot_latency_vs_batch", lambda results: PIXEL)
    results = _big_run(CURVES_LIMIT + 6)
    for i, job in enumerate(results["jobs"]):
        job["onnx"]["metrics"]["accuracy"] = i / 100
    write_reports(tmp_path, results)
    assert drawn == [j["id"] for j in results["jobs"][6:]]  # the most accurate, in the run's order
    page = (tmp_path / "report.html").read_text()
    curves = page.split('<section id="curves">')[1].split("</section>")[0]
    assert (f"Curves are drawn for the {CURVES_LIMIT} most accurate of the {CURVES_LIMIT + 6} jobs trained for "
            "more than one epoch") in curves
    # more than EMBED_CURVES: linked from plots/, loaded as they scroll into view; the other plots embedded
    assert CURVES_LIMIT > EMBED_CURVES
    linked = re.findall(r'<img [^>]*src="(plots/curves_[^"]+\.png)" loading="lazy">', curves)
    assert len(linked) == CURVES_LIMIT and "data:image" not in curves
    assert all((tmp_path / src).read_bytes() == PIXEL for src in linked)
    assert page.count('src="data:image/png;base64,') == 4
    assert len(curves.split('class="card"')) - 1 == CURVES_LIMIT + 6  # every job keeps its card and table
    # write_html alone writes the files it links
    other = tmp_path / "alone"
    report_html.write_html(other, results)
    assert sorted(p.name for p in (other / "plots").iterdir()) == sorted(src.split("/")[1] for src in linked)


def _media_block(css: str, query: str) -> str:
    """The rules inside ``@media QUERY { ... }`` of ``css``."""
    start = css.index(f"@media {query} {{") + len(f"@media {query} {{")
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(css[end], 0)
        end += 1
    return css[start:end - 1]


def test_a_printed_report_lays_every_column_and_row_on_the_page(tmp_path):
    """Paper cannot scroll a table's box: with `overflow: auto; max-height: 80vh` a PDF cut each results row
    at the page's edge (`1.5e-0`) and lost the latency, training and memory columns, and long tables lost
    their rows. Laid out as printed (the print rules applied, A4 landscape's 277 mm of width at 96 px/in),
    every box shows all it holds."""
    from harness.report import results_table, variants_table
    from harness.report_html import CSS, html_table

    results = load_report_run()
    tables = html_table(results_table(results)) + html_table(variants_table(results))
    printed = CSS + _media_block(CSS, "print")
    probe = ("p.textContent = [...document.querySelectorAll('.scroll')].map(b => Math.max(b.scrollWidth - "
             "b.clientWidth, b.scrollHeight - b.clientHeight)).join(' ')")
    hidden = _probed_in_chromium(tmp_path, tables, probe, "1047,500", css=printed)
    assert len(hidden) == 2 and max(hidden) <= 1, hidden  # pixels a box would have cut off
    assert "::details-content" in _media_block(CSS, "print")  # folded parts (every latency row) are printed


def test_tables_name_their_rows_and_box_and_say_unstable_in_words():
    """A screen reader heard a figure without its row's model (every cell a td), could not name a scrolling
    box, and skipped a bare `*` (most do not speak it at default punctuation)."""
    from harness.report import Table
    from harness.report_html import html_table

    table = html_table(Table(["model", "p50 ms", "note"], [["m<1>", "0.08* / 1.2", "slow * fast"]], {1}),
                       label="Results")
    assert '<div class="scroll" tabindex="0" role="region" aria-label="Results">' in table
    assert '<th scope="col">model</th><th scope="col" class="num">p50 ms</th>' in table
    assert '<th scope="row">m&lt;1&gt;</th>' in table
    assert '<td class="num">0.08*<span class="vh"> (unstable)</span> / 1.2</td>' in table
    assert '<td class="prose">slow * fast</td>' in table  # a star in words is not a figure's mark
    assert "clip-path" in _css_rule(".vh") and "min-width" in _css_rule("td.prose")


def test_the_plot_colours_stand_out_from_the_white_ground():
    """WCAG 1.4.11: a series needed to read a plot is at least 3:1 against its background (tab10's orange,
    the second group of every plot, was 2.5:1; the grey variant lines 2.8:1)."""
    from matplotlib.colors import to_rgb

    from harness.report_html import BACKGROUND_GREY, JOIN_GREY, SERIES_COLORS

    def luminance(color):
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    for color in (*SERIES_COLORS, JOIN_GREY, BACKGROUND_GREY):
        assert 1.05 / (luminance(color) + 0.05) >= 3, color
    assert len(set(SERIES_COLORS)) == 10


def test_groups_that_share_a_variants_marker_differ_in_fill_not_only_hue(monkeypatch):
    """With variants the marker is the variant's, so the datasets (or runs) told apart by colour alone:
    every other group is drawn hollow."""
    from harness.report_html import plot_accuracy_vs_size

    results = load_report_run()  # two finished datasets, and variants
    _, figures = _drawn(monkeypatch, lambda: plot_accuracy_vs_size(results))
    ax = figures[0].axes[0]
    drawn = [c for c in ax.collections if len(c.get_offsets())]
    filled = [len(c.get_facecolors()) > 0 and c.get_facecolors()[0][3] > 0 for c in drawn]
    assert any(filled) and not all(filled)
    edges = {tuple(c.get_edgecolors()[0]) for c, full in zip(drawn, filled) if not full}
    assert edges and all(edge[:3] != (1.0, 1.0, 1.0) for edge in edges)  # a hollow marker's ring is its colour


def test_the_page_follows_a_dark_setting_without_a_colour_of_its_own_outside_the_palette():
    from harness.report_html import CSS

    light = dict(re.findall(r"(--[a-z]+): ([^;]+);", _css_rule(":root")))
    dark = dict(re.findall(r"(--[a-z]+): ([^;]+);", _media_block(CSS, "screen and (prefers-color-scheme: dark)")))
    assert set(dark) == set(light) and all(dark[k] != light[k] for k in light)
    outside = re.sub(r":root \{[^}]*\}", "", CSS)
    assert not re.findall(r"#[0-9a-fA-F]{3,6}\b", outside)  # every colour a variable, so the dark block reaches it


def test_the_compute_plot_lists_its_front_and_the_size_plot_names_its_tables():
    """The plots' alt text is their title: what they show must be in the page as text too."""
    from harness.report import compute_candidates
    from harness.report_html import to_html

    results = load_report_run()
    for n, job in enumerate(results["jobs"]):
        job["flops"] = 1e6 * (n + 1)
    page = to_html(results)
    front = [c["label"] for c in compute_candidates(results) if c["pareto"]]
    section = page.split('<section id="compute">')[1].split("</section>")[0]
    assert front and "<h3>Accuracy/compute front</h3>" in section
    listed = re.findall(r'<th scope="row">[^<]*</th><td>([^<]*)</td>', section)
    assert sorted(listed) == sorted(html.escape(f) for f in front) and len(front) >= 2
    size = page.split('<section id="size">')[1].split("</section>")[0]
    assert "the Results table&#x27;s ONNX KiB and accuracy ORT columns" in size
