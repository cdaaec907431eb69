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


def test_one_line_names_the_exception_type_and_drops_colour_codes():
    assert one_line(RuntimeError("\x1b[31mred\x1b[0m\n  text")) == "RuntimeError: red text"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(ValueError("y" * 1000), limit=50)) == len("ValueError: ") + 50


def test_mflops_is_the_tables_format():
    from harness.text import mflops

    assert [mflops(v) for v in (469_504, 3_514_000, 14_904_832, 317_961_216, 1_234_567_890)] == \
        ["0.47", "3.51", "14.9", "318.0", "1,234.6"]
    assert mflops(None) == mflops("3") == mflops(True) == "-"
