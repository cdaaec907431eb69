import pytest

from harness.manager import one_line
from harness.text import squeeze


def test_squeeze_puts_text_on_one_line_and_cuts_it_with_an_ellipsis():
    assert squeeze("a\n  b\tc \r\n") == "a b c"
    assert squeeze(ValueError("x\ny")) == "x y"
    assert squeeze("abcdefghij", 10) == "abcdefghij"
    cut = squeeze("abcdefghijk", 10)
    assert cut == "abcdefg..." and len(cut) == 10
    assert squeeze("", 5) == "" and squeeze(None) == "None"
    assert squeeze("abcdef", 2) == "ab" and squeeze("abcdef", 4) == "a..."  # never longer than the limit
    # torch's exporter colours its messages; a table cell or results.json has no use for the codes
    assert squeeze("Failed. \x1b[96mThis is step 1/3\x1b[0m of exporting") == "Failed. This is step 1/3 of exporting"
    from harness.manager import one_line

    assert one_line(ValueError("\x1b[31mred\x1b[0m\nline")) == "ValueError: red line"  # plugin errors alike


def test_one_line_names_the_exception_type_and_drops_colour_codes():
    assert one_line(RuntimeError("\x1b[31mred\x1b[0m\n  text")) == "RuntimeError: red text"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(ValueError("y" * 1000), limit=50)) == len("ValueError: ") + 50


def test_mflops_is_the_tables_format():
    from harness.text import mflops

    assert [mflops(v) for v in (469_504, 3_514_000, 14_904_832, 317_961_216, 1_234_567_890)] == \
        ["0.47", "3.51", "14.9", "318.0", "1,234.6"]
    assert mflops(None) == mflops("3") == mflops(True) == "-"


@pytest.mark.parametrize("text, size", [
    ("65536", 65536), (4096, 4096), ("64KiB", 65536), ("64 kib", 65536), ("64k", 65536), ("64kB", 65536),
    ("1.5MB", 1_572_864), ("2MiB", 2 * 1024 ** 2), ("1G", 1024 ** 3), ("1_000 B", 1000), ("0.5KiB", 512),
    ("1e3", 1000), ("1.5e1KB", 15_360), (1e6, 1_000_000), (2 ** 53 + 1, 2 ** 53 + 1), (" 64 KiB ", 65536),
    ("0.1KiB", 102),
])
def test_parse_bytes_reads_binary_and_decimal_units(text, size):
    from harness.text import parse_bytes

    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "64 apples", "-1", "0", "0.1", "1.5", 2.5, "nan", "inf", "1.2.3k", True,
                                  "64KiBs", "1" + "0" * 400, "1e", None])
def test_parse_bytes_refuses_what_is_no_size(text):
    from harness.text import parse_bytes

    with pytest.raises(ValueError) as refused:
        parse_bytes(text)
    assert len(str(refused.value)) < 120  # one readable line, even for a 400-digit number


def test_size_text_is_the_tables_format():
    from harness.text import size_text

    assert [size_text(n) for n in (512, 31_208, 25_480_000)] == ["512 B", "30.5 KiB", "24.30 MiB"]
    assert size_text(None) == size_text(True) == size_text(1.5) == "-" and size_text(3 * 1024 ** 3 // 2) == "1.50 GiB"


def test_squeeze_keeps_the_reason_of_an_onnx_runtime_error_not_its_cpp_source_line():
    from harness.text import squeeze

    raw = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/x/m.onnx failed:/onnxruntime_src/onnxruntime/core/graph/"
           "model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const "
           "onnxruntime::logging::Logger&, const onnxruntime::ModelOptions&) Unsupported model IR version: 14, max "
           "supported IR version: 13\n")
    assert squeeze(raw, 120) == ("Load model from /tmp/x/m.onnx failed: Unsupported model IR version: 14, "
                                 "max supported IR version: 13")
    other = "failed:/onnxruntime_src/x/y.h:46 void a::b::C(const std::unordered_map<std::string, int>&, int) Opset 30"
    assert squeeze(other) == "failed: Opset 30"
    assert squeeze("a plain message (with parentheses) stays") == "a plain message (with parentheses) stays"
    # the Windows and macOS wheels' build paths: the reason was cut off behind them
    tail = (" onnxruntime::Model::Model(ModelProto &&, const PathString &, const logging::Logger &, const "
            "ModelOptions &) Unsupported model IR version: 14, max supported IR version: 10")
    for where in (r"C:\__w\1\s\onnxruntime\onnxruntime\core\graph\model.cc:180",
                  "/Users/runner/work/1/s/onnxruntime/core/graph/model.cc:182"):
        assert squeeze(f"Load model from m.onnx failed:{where}{tail}", 120) == (
            "Load model from m.onnx failed: Unsupported model IR version: 14, max supported IR version: 10")
    assert squeeze("no file /home/u/onnxruntime/core/m.onnx here") == "no file /home/u/onnxruntime/core/m.onnx here"


def test_squeeze_keeps_the_shapes_of_a_failed_onnx_runtime_node_within_the_cut():
    """A skipped batch size's reason was cut at 200 characters just before the shapes it was about."""
    from harness.text import squeeze

    raw = ("Error in execution: Non-zero status code returned while running Reshape node. Name:'/Reshape' Status "
           "Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 onnxruntime::"
           "ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) "
           "input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped to the "
           "requested shape. Input shape:{4,8}, requested shape:{2,8}\n")
    assert squeeze(raw, 200) == ("Error in execution: Reshape node '/Reshape': The input tensor cannot be reshaped to "
                                 "the requested shape. Input shape:{4,8}, requested shape:{2,8}")
    assert squeeze("a == b was false here") == "a == b was false here"  # not ONNX Runtime's check: kept


def test_ms_text_keeps_three_significant_digits_below_a_tenth_of_a_millisecond():
    from harness.text import ms_text

    # three decimals left 9.34 microseconds as 0.009: one digit, beside the edge table's 0.0093
    assert [ms_text(v) for v in (0.00934, 0.0173, 0.02, 0.161, 12.0, 0, None)] == [
        "0.00934", "0.0173", "0.0200", "0.161", "12.000", "0.000", "-"]


@pytest.mark.parametrize("raw, shown", [
    ("a\x1b]0;pwned title\x07b", "ab"),  # OSC: the window title, ended by BEL
    ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ me", "click me"),  # OSC 8 hyperlink, ended by ST
    ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel), APC, PM, SOS strings
    ("x\x1b_apc\x1b\\y\x1b^pm\x1b\\z\x1bXsos\x1b\\", "xyz"),
    ("\x9d0;title\x9cok\x9b31m!", "ok!"),  # their 8-bit C1 forms
    ("\x1b[?25l\x1b[2J\x1b[1;1Hcleared\x1bc\x1b(0q", "clearedq"),  # cursor, erase, reset, charset
    ("a\x00b\x07c\x7fd\x08e\x1bf", "abcde"),  # NUL, BEL, DEL, backspace, a lone ESC
    ("mnist\rfake", "mnist fake"),  # a carriage return would overwrite the start of the line
    ("over\x1b]0;unterminated", "over"),  # an unterminated string: swallowed to the end, as a terminal would
    ("é ✓ 実験 (ok) [x]", "é ✓ 実験 (ok) [x]"),  # printable text stays as it is
])
def test_squeeze_drops_every_terminal_escape_and_control_character(raw, shown):
    from harness.text import plain

    assert squeeze(raw) == shown
    assert plain(raw).split() == shown.split()
    for cleaned in (squeeze(raw), plain(raw)):
        assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in cleaned), repr(cleaned)


def test_plain_puts_a_name_on_one_line_and_keeps_its_spaces():
    from harness.text import plain

    assert plain("two\nlines\tand\r\x0b\x0cbreaks\u2028x") == "two lines and   breaks x"
    assert plain("a  b") == "a  b" and plain(None) == "None" and plain(3) == "3"


def test_terminal_tables_keep_one_row_per_job_whatever_the_names():
    """A model named with a newline, a tab or a title escape split the rows of the terminal's tables."""
    from harness.compare import compare_runs, format_comparison
    from harness.report import comparison_table

    hostile = "evil\nnet\t\x1b]0;title\x07\r\x1b]8;;http://x\x1b\\y\x1b]8;;\x1b\\"
    job = {"id": f"{hostile}@synthetic", "model": hostile, "dataset": "syn\nthetic", "status": "ok",
           "point": {"lr": "0.1\nx"}, "metrics": {"accuracy": 0.9},
           "latency": [{"runtime": "onnxruntime", "provider": "CPUExecutionProvider", "batch_size": 1, "threads": 1,
                        "p50_ms": 1.0, "p99_ms": 2.0, "mean_ms": 1.0}]}
    results = {"schema_version": 1, "run_id": "r", "jobs": [job]}
    table = comparison_table(results)
    assert len(table.splitlines()) == 3  # the header, its rule, one row
    assert "evil net  y" in table and "lr=0.1 x" in table and "syn thetic" in table
    base = {**results, "jobs": [{**job, "metrics": {"accuracy": 0.8}}]}
    text = format_comparison(compare_runs(base, results, 10.0))
    lines = text.splitlines()
    assert [line.split("@")[0] for line in lines if "@synthetic" in line] == ["evil net  y"] * 2  # accuracy, p50
    for shown in (table, text):
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in shown), repr(shown)


def test_seeds_text_keeps_a_large_group_of_seeds_short():
    """A comparison's label listed every seed on every row: 1,000 seeds made 4,041-character lines, 40 MB."""
    from harness.text import seeds_text

    assert seeds_text([0, 1, 2]) == "0,1,2" and seeds_text([5, 1], sep=", ") == "5, 1"
    assert seeds_text(range(1000)) == "0-999" and seeds_text(range(10, 17)) == "10-16"
    assert seeds_text([0, 3, 7, 12, 20, 33, 90, 97]) == "0,3,7,...,33,90,97 (8 seeds)"
    assert seeds_text(["a", "b", "c", "d", "e", "f", "g"]) == "a,b,c,...,e,f,g (7 seeds)"
    assert len(seeds_text(list(range(0, 3000, 3)))) < 40


def test_a_name_cannot_be_a_ci_runners_log_command():
    """A model name from a fork's results.json began a row of `harness report`'s table: `::error ...::` made
    a GitHub Actions annotation (or ::add-mask::, ::stop-commands::), `##vso[...]` set an Azure variable."""
    from harness.text import ZERO_WIDTH, plain, squeeze

    for text in ("::error title=x::boom", "  ::add-mask::x", "a ##vso[task.prependpath]/tmp", "##[group]x"):
        for shown in (plain(text), squeeze(text)):
            bare = shown.lstrip()
            assert not bare.startswith("::") and "##vso[" not in shown and "##[" not in shown, shown
            assert shown.replace(ZERO_WIDTH, "").strip() == " ".join(text.split()), shown  # it reads the same
    assert plain("a::b #1 x") == "a::b #1 x"  # text in the middle of a line is no command


def test_credentials_in_a_url_are_redacted():
    """An unreachable MLflow server's URL, token and all, went into results.json and the reports (CI
    artifacts); a --ray-address with a password into results.json's config."""
    from harness.runner import RunOptions
    from harness.text import redact_credentials

    said = redact_credentials("cannot reach https://ci-bot:SECRET_1@10.0.0.9:5000/api?token=SECRET_2&x=1: refused")
    assert "SECRET" not in said and said == "cannot reach https://***@10.0.0.9:5000/api?token=***&x=1: refused"
    assert redact_credentials("ray://head:10001 and mail a@b.c") == "ray://head:10001 and mail a@b.c"
    stored = RunOptions(executor="ray", ray_address="ray://ci:RAYSECRET@head:10001").to_config()
    assert stored["ray_address"] == "ray://***@head:10001"


def test_a_reporters_failure_is_kept_without_the_urls_credentials():
    from harness.reporters import ReporterSet

    class Tracker:
        name = "mlflow"

        def run_started(self, *args):
            raise ConnectionError("cannot reach the MLflow tracking server at https://ci-bot:TOKEN@mlflow.example/")

    reporters = ReporterSet([Tracker()])
    reporters.call("run_started", None, {}, {})
    assert reporters.errors and "TOKEN" not in reporters.errors[0] and "https://***@mlflow.example/" in reporters.errors[0]
