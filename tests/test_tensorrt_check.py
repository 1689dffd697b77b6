"""benchmarks/tensorrt_check.sh, the five-minute check for a machine with TensorRT and a GPU: nothing here runs it
for real, so what can be checked on a CPU is: the script parses, says in one line that it needs TensorRT (and writes
nothing), every command it would run is accepted by that command's own argument parser, and the Python checks it
calls (`export.trt_check`) find what they are meant to find."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import trt_check

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "tensorrt_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the check script is a bash script")


def run_script(tmp_path, **env):
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path / "work")], capture_output=True, text=True, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(REPO), **env})


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_without_tensorrt_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    result = run_script(tmp_path)
    assert result.returncode == 2 and not (tmp_path / "work").exists()
    assert result.stderr.strip().splitlines() == [
        "tensorrt_check: needs NVIDIA TensorRT's Python package and an NVIDIA GPU here (ModuleNotFoundError: No "
        "module named 'tensorrt')"]


def test_every_command_it_would_run_is_accepted_by_that_command(tmp_path, monkeypatch):
    result = run_script(tmp_path, TENSORRT_CHECK_DRY_RUN="1")
    assert result.returncode == 0 and not (tmp_path / "work").exists()
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    modules = [command[2] for command in commands]
    assert modules.count("export.build_engine") == 5 and modules.count("kernels.aot") == 2
    checked = {"export.build_engine": _parse_build, "export.onnx": _parse_export, "kernels.aot": _parse_aot,
               "export.trt_check": _parse_check}
    for command in commands:
        assert command[:2] == [sys.executable, "-m"]
        checked[command[2]](command[3:], monkeypatch)
    plain_kernels, hidden_kernels = [command for command in commands if command[2] == "kernels.aot"]
    assert "96" in plain_kernels  # the head size whose tiles need most shared memory
    assert "--keep-hidden-parameters" in hidden_kernels and "--keep-hidden-parameters" not in plain_kernels


def _parse_build(argv, monkeypatch):
    from export.build_engine import build_parser

    args = build_parser().parse_args(argv)
    assert args.batch.max >= 2  # shapes change during the replay check


def _parse_export(argv, monkeypatch):
    import export.onnx

    seen = []
    monkeypatch.setattr(export.onnx, "export_onnx", lambda *args, **kwargs: seen.append(kwargs) or Path("x"))
    export.onnx.main(argv)
    assert seen


def _parse_aot(argv, monkeypatch):
    pytest.importorskip("triton")
    import kernels.aot

    seen = []
    monkeypatch.setattr(kernels.aot, "compile_kernels", lambda *args: seen.append(args) or {"kernels": []})
    assert kernels.aot.main(argv) == 0 and seen


def _parse_check(argv, monkeypatch):
    monkeypatch.setattr(trt_check, "write_models", lambda out: [])
    monkeypatch.setattr(trt_check, "_engine_and_reference", _no_engine)
    monkeypatch.setattr(trt_check, "append_result", lambda *args: None)
    if argv[0] == "table":
        monkeypatch.setattr(trt_check, "table", lambda *args: "")
        monkeypatch.setattr(Path, "write_text", lambda *args, **kwargs: None)
        monkeypatch.setattr(Path, "read_text", lambda *args, **kwargs: "")
    trt_check.main(argv)


def _no_engine(engine, onnx_path):
    from fmca_rt.errors import EngineError

    raise EngineError("no engine in a dry run")


def reference(pixels):
    return np.stack([pixels.mean(axis=(1, 2, 3)), pixels.std(axis=(1, 2, 3))], axis=1)


def test_the_replay_check_finds_a_result_for_the_wrong_shape():
    calls = []

    def stale_after_a_shape_change(pixels):  # a graph replayed after the batch changed: the old batch's rows
        calls.append(len(pixels))
        out = reference(pixels)
        if len(calls) > 1 and calls[-2] != calls[-1]:
            out[:, 1] += 1.0
        return out

    faithful = trt_check.compare_sequence(reference, reference, 8)
    assert faithful["passed"] and faithful["max_delta_p_fake"] == 0
    stale = trt_check.compare_sequence(stale_after_a_shape_change, reference, 8)
    changes = [f"call {i + 1} (batch {b})" for i, b in enumerate(trt_check.REPLAY_BATCHES)
               if i and b != trt_check.REPLAY_BATCHES[i - 1]]
    assert not stale["passed"] and stale["worst"] in changes and len(changes) >= 3


def test_the_thread_check_reports_errors_and_nan():
    def racy(pixels):
        raise RuntimeError("context used by two threads")

    failed = trt_check.check_threads(racy, reference, 8)
    assert not failed["passed"] and failed["errors"][0] == "RuntimeError: context used by two threads"
    nan = trt_check.check_threads(lambda pixels: reference(pixels) * np.nan, reference, 8)
    assert not nan["passed"] and nan["max_delta_p_fake"] == float("inf")
    assert trt_check.check_threads(reference, reference, 8)["passed"]


def test_the_table_has_builds_kernels_and_checks(tmp_path):
    engines, kernels = tmp_path / "engines", tmp_path / "kernels"
    engines.mkdir()
    kernels.mkdir()
    (engines / "tiny-fp16.engine.json").write_text(json.dumps({"extra": {"validation": {"max_delta_p_fake": 3e-4}}}))
    (kernels / "manifest.json").write_text(json.dumps({"kernels": [{
        "name": "sfcm_attention_fp16_d96_sm87", "shared_memory": 90112, "ptx_parameters": 19, "ptx_version": "8.5",
        "arguments": [{"kind": "input"}] * 17}]}))
    results = tmp_path / "results.jsonl"
    trt_check.append_result(results, {"check": "replay tiny-fp16.engine", "passed": False, "max_delta_p_fake": 0.4,
                                      "detail": "call 4 (batch 3)"})
    assert trt_check.table(results, engines, [kernels]).splitlines()[2:] == [
        "| kernel sfcm_attention_fp16_d96_sm87 (kernels) | compiled | | 90112 B shared memory, 2 hidden PTX "
        "parameters, PTX ISA 8.5 |",
        "| build tiny-fp16 | PASS | 3.00e-04 | engine written after the build's own gate |",
        "| replay tiny-fp16.engine | FAIL | 4.00e-01 | call 4 (batch 3) |"]


def test_the_models_have_the_head_sizes_the_check_needs(tmp_path):
    from training.model import FMCANet

    paths = trt_check.write_models(tmp_path)
    heads = [FMCANet.from_checkpoint(p).config for p in paths]
    assert [c.embed_dim // c.sfcm_heads for c in heads] == [32, 96]
