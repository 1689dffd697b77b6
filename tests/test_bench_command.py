"""`fmca-rt benchmark --quick` on a tiny model: the JSON schema, the Markdown tables, the accuracy oracle,
and one-sentence errors. No timing is asserted (speed is reported by the benchmark, not tested)."""

import importlib.util
import json

import pytest

from fmca_rt.bench.runner import SCHEMA, STAGES
from fmca_rt.bench.variants import BASELINE, DEFAULT_VARIANTS
from fmca_rt.cli import main

from sdk_models import tiny_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
PERCENTILE_KEYS = {"n", "min", "p50", "p90", "p99"}
HAVE_OPENVINO = all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))
OPENVINO_ROWS = {name for name in DEFAULT_VARIANTS if name.startswith("openvino")}
RUNNING = [name for name in DEFAULT_VARIANTS if HAVE_OPENVINO or name not in OPENVINO_ROWS]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    code = main(["benchmark", "--model", str(tiny_checkpoint()), "--quick", "--batch", "1,2", "--work-dir",
                 str(folder / "work"), "--json", str(folder / "result.json"), "--markdown", str(folder / "result.md")])
    assert code == 0
    return json.loads((folder / "result.json").read_text()), (folder / "result.md").read_text(), folder


def test_result_has_a_row_per_variant_and_batch_with_every_stage(quick_run):
    result, _, _ = quick_run
    assert result["schema"] == SCHEMA and result["baseline"] == BASELINE
    assert {row["variant"] for row in result["skipped"]} == set(DEFAULT_VARIANTS) - set(RUNNING)
    rows = {(row["variant"], row["batch"]): row for row in result["results"]}
    assert set(rows) == {(name, batch) for name in RUNNING for batch in (1, 2)}
    for (name, batch), row in rows.items():
        assert set(row["latency_ms"]) == set(STAGES)
        for stage in STAGES:
            stats = row["latency_ms"][stage]
            assert set(stats) == PERCENTILE_KEYS and stats["n"] == result["settings"]["iters"]
            assert 0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"]
        assert row["throughput_faces_per_s"] > 0 and row["speedup_vs_baseline"] > 0
        assert (row["frame_ms"] is not None) == (batch == 1)  # the video frame is timed at batch 1
        assert row["host_memory_mb"]["peak_rss"] > 0
    assert rows[(BASELINE, 1)]["speedup_vs_baseline"] == rows[(BASELINE, 1)]["speedup_vs_baseline_min"] == 1.0


def test_result_describes_the_machine_and_the_load(quick_run):
    result, _, _ = quick_run
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["cpu"]
    assert {"python", "numpy", "onnxruntime", "torch"} <= set(machine["libraries"])
    assert len(result["load_average"]["before"]) == 3
    assert result["model"]["config"]["embed_dim"] == 96 and result["model"]["config"]["image_size"] == 112


def test_accuracy_against_pytorch_float32_on_real_face_crops(quick_run):
    """ONNX Runtime float32 must compute PyTorch's logits (an independent engine as the oracle); every
    quantized form must stay within the issue's bound on P(fake)."""
    result, _, _ = quick_run
    accuracy = {row["variant"]: row for row in result["accuracy"]}
    assert set(accuracy) == set(RUNNING)
    assert accuracy[BASELINE]["max_abs_logit_diff"] == 0.0
    assert accuracy["onnxruntime-fp32"]["max_abs_logit_diff"] <= 1e-4
    assert accuracy["cpu"]["crops"] >= 32
    for name in ("cpu", "torch-bf16", "onnxruntime-int8-dynamic", "onnxruntime-int8-static"):
        assert 0.0 < accuracy[name]["max_abs_fake_prob_diff"] <= 0.01, name  # > 0: it really ran reduced


@pytest.mark.skipif(not HAVE_OPENVINO, reason="OpenVINO and NNCF are not installed: pip install 'fmca-rt[openvino]'")
def test_openvino_rows_against_pytorch_float32(quick_run):
    accuracy = {row["variant"]: row for row in quick_run[0]["accuracy"]}
    assert accuracy["openvino-fp32"]["max_abs_logit_diff"] <= 1e-4
    assert 0.0 < accuracy["openvino-bf16"]["max_abs_fake_prob_diff"] <= 0.01
    assert accuracy["openvino-int8"]["max_abs_logit_diff"] > 0.0  # NNCF's INT8 ran; its bound is not promised
    assert accuracy["openvino-int8-bf16"]["max_abs_logit_diff"] != accuracy["openvino-int8"]["max_abs_logit_diff"]


@pytest.mark.skipif(HAVE_OPENVINO, reason="OpenVINO is installed: its rows run (the test above)")
def test_without_openvino_its_rows_are_skipped_with_the_install_command(quick_run):
    for row in quick_run[0]["skipped"]:
        assert row["variant"] in OPENVINO_ROWS and "pip install 'fmca-rt[openvino]'" in row["reason"]


def test_markdown_has_both_tables_and_the_load(quick_run):
    _, text, _ = quick_run
    assert "Load average" in text and "| variant | batch | infer p50 |" in text
    for name in RUNNING:
        assert f"| {name} | 1 |" in text and f"| {name} | 2 |" in text


def test_a_second_run_reuses_the_exported_files(quick_run, capsys):
    _, _, folder = quick_run
    exported = sorted((folder / "work").glob("*.onnx"))
    stamps = [path.stat().st_mtime_ns for path in exported]
    assert main(["benchmark", "--model", str(tiny_checkpoint()), "--quick", "--batch", "2", "--backends",
                 "onnxruntime-fp32,onnxruntime-int8-static", "--work-dir", str(folder / "work")]) == 0
    assert [path.stat().st_mtime_ns for path in exported] == stamps
    out = capsys.readouterr().out  # no batch 1, so no video-frame timing
    assert "| onnxruntime-int8-static | 2 |" in out and "| 1 |" not in out


@pytest.mark.parametrize("arguments, message", [
    (["--model", "missing.pth"], "does not exist"),
    (["--model", "model.engine"], "starts from the checkpoint"),
    (["--model", "model.onnx"], "Model file model.onnx does not exist"),
    (["--model", "nonsense"], "must be a checkpoint"),
    (["--model", "tiny", "--backends", "torch-fp32,warp-drive"], "Unknown benchmark backend warp-drive"),
    (["--model", "tiny", "--backends", "cpu", "--device", "cuda"], "run on the CPU only"),
    (["--model", "tiny", "--iters", "3", "--rounds", "4"], "--rounds between 1 and --iters"),
    (["--model", "tiny", "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
])
def test_user_mistakes_get_one_sentence_and_exit_status_2(arguments, message, capsys):
    assert main(["benchmark", "--quick", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_a_tensorrt_row_without_an_engine_is_reported_as_not_run(tmp_path, capsys):
    assert main(["benchmark", "--model", str(tiny_checkpoint()), "--quick", "--no-frame", "--backends", "tensorrt",
                 "--work-dir", str(tmp_path)]) == 0
    assert "- tensorrt: The tensorrt variant runs a prebuilt engine: pass --engine FILE" in capsys.readouterr().out


def test_asking_for_a_gpu_without_one_is_one_sentence(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(["benchmark", "--quick", "--model", "tiny", "--backends", "torch-fp32", "--device", "cuda"]) == 2
    assert "PyTorch sees no CUDA GPU" in capsys.readouterr().err
