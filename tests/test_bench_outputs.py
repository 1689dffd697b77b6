"""A benchmark's tables are printed before they are saved: a failed write costs the file, never the numbers."""

import importlib
import json

import pytest

from fmca_rt.bench.outputs import measure_and_save, print_and_save


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


def test_a_measurement_that_fails_for_a_user_s_reason_is_one_sentence_and_exit_2(tmp_path, capsys):
    from fmca_rt.errors import BackendError

    def measure():
        raise BackendError("Model file x.onnx does not exist.")

    assert measure_and_save(measure, str, tmp_path / "r.json", None) == 2
    assert capsys.readouterr().err == "error: Model file x.onnx does not exist.\n"
    assert not (tmp_path / "r.json").exists()
    assert measure_and_save(lambda: {"rows": [3]}, lambda result: f"| {result['rows'][0]} |", None, None) == 0
    assert capsys.readouterr().out == "| 3 |\n"


@pytest.mark.parametrize("module", ["int8_parts", "video_tracks"])
def test_the_benchmark_commands_name_a_missing_model_in_one_sentence(module, tmp_path, capsys):
    command = importlib.import_module(f"fmca_rt.bench.{module}")
    missing = str(tmp_path / "missing.onnx")
    assert command.main([missing] if module == "int8_parts" else ["--model", missing]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "missing.onnx" in error and error.count("\n") == 1
