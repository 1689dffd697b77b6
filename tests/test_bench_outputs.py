"""A benchmark's tables are printed before they are saved: a failed write costs the file, never the numbers."""

import json

from fmca_rt.bench.outputs import print_and_save


def test_the_tables_are_saved_as_printed(tmp_path, capsys):
    result = {"rows": [1, 2], "path": tmp_path}  # a Path is written as its text
    assert print_and_save(result, "| a |", tmp_path / "r.json", tmp_path / "r.md") == 0
    assert capsys.readouterr().out == "| a |\n"
    assert json.loads((tmp_path / "r.json").read_text()) == {"rows": [1, 2], "path": str(tmp_path)}
    assert (tmp_path / "r.md").read_text() == "| a |\n"


def test_a_write_that_fails_is_one_sentence_after_the_printed_tables(tmp_path, capsys):
    (tmp_path / "file").write_text("in the way")
    assert print_and_save({"rows": []}, "| a |", tmp_path / "file" / "r.json", None) == 1
    printed = capsys.readouterr()
    assert printed.out == "| a |\n"
    assert printed.err.startswith("fmca-rt: error: Cannot write ") and printed.err.endswith(
        "The tables above were not saved.\n") and printed.err.count("\n") == 1
