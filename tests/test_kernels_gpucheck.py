"""`python -m kernels.gpucheck` without a GPU: what it computes and writes that needs no CUDA (launch arguments
against the compiled PTX, roofline arithmetic, goals, the report and its sections), and its refusal to run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import _driver_launch, _gpucheck_report, _roofline
from kernels._checks import is_interpreted
from kernels._gpucheck_numerics import compare
from kernels.gpucheck import run_sections

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when there is no GPU")
def test_without_a_gpu_it_says_so_and_fails(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "kernels.gpucheck", "--out", str(tmp_path)], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "nothing was run" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


# ---- launch arguments, checked against the parameters of the PTX and cubin kernels.aot writes -------------
@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from kernels import _sfcm_attention, aot

    if is_interpreted(_sfcm_attention._sfcm_attention_kernel):
        pytest.skip("TRITON_INTERPRET=1 is set: interpreted kernels cannot be compiled in this process")
    out = tmp_path_factory.mktemp("aot")
    return out, aot.compile_kernels([90], out, ("fp16",), (96,))


def ptx_parameter_kinds(ptx: str, kernel: str) -> list[str]:
    body = re.search(r"\.entry\s+" + kernel + r"\s*\((.*?)\)", ptx, re.S).group(1)
    return ["u64" if ".u64" in p else "i32" for p in body.split(",")]


def test_arguments_match_the_entry_points_parameters(manifest):
    out, data = manifest
    for entry in data["kernels"]:
        sizes = ({"B": 2, "C": 3, "H": 37, "W": 130} if entry["op"] == "haar_dwt"
                 else {"B": 2, "heads": 8, "N_p": 256, "N_f": 49, "D": 96})
        pointers = {a["tensor"]: 1000 * (i + 1) for i, a in enumerate(entry["arguments"]) if a["kind"] != "int32"}
        ptx = (out / entry["ptx"]).read_text()
        arguments = _driver_launch.kernel_arguments(entry, pointers, sizes, entry["ptx_parameters"])
        assert [kind for kind, _ in arguments] == ptx_parameter_kinds(ptx, entry["kernel"])
        with_hidden = _driver_launch.kernel_arguments(entry, pointers, sizes, entry["cubin_parameters"])
        assert with_hidden[:len(arguments)] == arguments and with_hidden[len(arguments):] == [("u64", 0)] * 2
        if entry["op"] == "sfcm_attention":
            # input pointers in order, the counts and token-major strides, then the outputs
            assert arguments == [("u64", 1000), ("u64", 2000), ("u64", 3000), ("u64", 4000), ("u64", 5000),
                                 ("u64", 6000), ("i32", 256), ("i32", 49), ("i32", 8), ("i32", 256 * 8 * 96),
                                 ("i32", 96), ("i32", 8 * 96), ("i32", 49 * 8 * 96), ("i32", 96), ("i32", 8 * 96),
                                 ("u64", 16000), ("u64", 17000)]


def test_argument_packing_refuses_what_the_kernel_cannot_take(manifest):
    _, data = manifest
    entry = next(e for e in data["kernels"] if e["op"] == "sfcm_attention")
    pointers = {a["tensor"]: 1 for a in entry["arguments"] if a["kind"] != "int32"}
    with pytest.raises(ValueError, match="does not fit the kernel's int32 argument"):
        _driver_launch.kernel_arguments(entry, pointers, {"B": 1, "heads": 8, "N_p": 2 ** 22, "N_f": 1}, 17)
    with pytest.raises(ValueError, match="declares 15 parameters but its manifest lists 17"):
        _driver_launch.kernel_arguments(entry, pointers, {"B": 1, "heads": 8, "N_p": 4, "N_f": 4}, 15)


def test_without_cupy_or_cuda_python_the_report_says_so(monkeypatch):
    for name in ("cupy", "cuda", "cuda.bindings", "cuda.bindings.driver", "cuda.cuda"):
        monkeypatch.setitem(sys.modules, name, None)
    launcher, why = _driver_launch.driver_launcher()
    assert launcher is None and why.startswith("neither CuPy nor cuda-python is importable here")


# ---- arithmetic and report ---------------------------------------------------------------------------------
def test_work_and_traffic():
    assert _roofline.attention_flops(64, 8, 256, 256, 96) == 2 * 4 * 64 * 8 * 256 * 256 * 96
    # qp, kp, vp, ap with 256 tokens and qf, kf, vf, af with 49, 2 bytes each
    assert _roofline.attention_bytes(2, 8, 256, 49, 96, 2) == (4 * 256 + 4 * 49) * 2 * 8 * 96 * 2
    assert _roofline.dwt_bytes(1, 3, 5, 5, 4) == 4 * (75 + 12 * 9)


def test_shares_of_the_measured_roofline():
    roofline = _roofline.Roofline(bandwidth=1e12, flops={"fp16": 1e15})
    memory_bound = _roofline.shares(2e-3, flops=1e12, moved=10 ** 9, roofline=roofline, dtype="fp16")
    assert memory_bound["gbps"] == pytest.approx(500) and memory_bound["of_memory"] == pytest.approx(0.5)
    assert memory_bound["of_compute"] == pytest.approx(0.5) and memory_bound["of_roofline"] == pytest.approx(0.5)
    compute_bound = _roofline.shares(4e-3, flops=2e12, moved=10 ** 6, roofline=roofline, dtype="fp16")
    assert compute_bound["of_roofline"] == pytest.approx(0.5)  # 2 ms allowed by compute, 4 ms taken
    assert "of_compute" not in _roofline.shares(1.0, 1.0, 1, roofline, "fp32")


def timing(op, case, impl, launch_s, graph_s=None, of_memory=0.5):
    row = {"op": op, "case": case, "impl": impl, "launch_s": launch_s, "launch": {"of_memory": of_memory,
                                                                                  "of_roofline": of_memory}}
    if graph_s is not None:
        row.update(graph_s=graph_s, graph={"of_memory": of_memory, "of_roofline": of_memory})
    return row


def test_goals_are_judged_from_the_timings():
    case64, case1 = "fp16 B=64 heads=8 N=256/256 D=96", "fp16 B=1 heads=8 N=256/256 D=96"
    rows = [timing("sfcm_attention", case64, "triton (jit tiles)", 1.0, of_memory=0.7),
            timing("sfcm_attention", case64, "2 x sdpa flash", 2.0), timing("sfcm_attention", case64, "2 x sdpa cudnn", 1.2),
            {"op": "sfcm_attention", "case": case64, "impl": "2 x sdpa efficient", "unsupported": "no kernel"},
            timing("sfcm_attention", case1, "triton (jit tiles)", 1.0, graph_s=1.0),
            timing("sfcm_attention", case1, "2 x sdpa flash", 3.0, graph_s=2.0),
            timing("haar_dwt", "fp16 B=64 3x224x224", "triton kernel", 1.0),
            timing("haar_dwt", "fp16 B=64 3x224x224", "copy of the same bytes", 0.9)]
    measured = [(g["measured"], g["met"]) for g in _gpucheck_report.goal_rows(rows)]
    assert measured[0] == (pytest.approx(1.2), False)  # the fastest SDPA backend is the baseline
    assert measured[1] == (pytest.approx(0.7), True)
    assert measured[2] == (pytest.approx(2.0), True)  # CUDA-graph times, not launch times
    assert measured[3] == (pytest.approx(0.9), True)
    assert measured[4] == (None, None)  # no fp32 timings: unmeasured, not failed


def test_compare_flags_errors_and_non_finite_values():
    exact = torch.tensor([1.0, -2.0, 100.0])
    assert compare("c", "x", exact + 1e-4, exact, 1e-3)["ok"]
    assert not compare("c", "x", exact + torch.tensor([0.0, 0.0, 1.0]), exact, 1e-3)["ok"]
    nan = compare("c", "x", torch.tensor([1.0, float("nan"), 100.0]), exact, 1e-3)
    assert not nan["ok"]


def report_skeleton():
    return {"gpu": {"name": "NVIDIA H200", "arch": 90, "sm_count": 132, "driver": 12080},
            "versions": {"torch": "2.11.0", "triton": "3.6.0"}, "command": "python -m kernels.gpucheck",
            "elapsed_s": 0.0, "complete": False, "sections": {}, "goals": []}


def test_sections_are_recorded_one_by_one_and_a_failure_does_not_stop_the_rest(tmp_path):
    report = report_skeleton()
    written = []

    def broken():
        raise RuntimeError("driver said no")

    sections = [("numerics", lambda: {"rows": [{"check": "c", "case": "a", "max_error": 0.0, "tolerance": 1e-3,
                                                 "ok": True}, {"check": "c", "case": "b", "max_error": 1.0,
                                                               "tolerance": 1e-3, "ok": False}]}),
                ("aot launch", broken),
                ("roofline", lambda: written.append(json.loads((tmp_path / "gpucheck-nvidia-h200.json").read_text()))
                 or {"copy_bandwidth_gbps": 4000.0})]
    run_sections(sections, report, tmp_path, budget_s=1e9, started=0.0)
    assert report["sections"]["numerics"]["status"] == "1 comparison(s) FAILED"
    assert report["sections"]["aot launch"]["status"] == "error: RuntimeError: driver said no"
    assert report["sections"]["roofline"]["status"] == "ok"
    assert list(written[0]["sections"]) == ["numerics", "aot launch"]  # written before the next section ran
    text = (tmp_path / "gpucheck-nvidia-h200.md").read_text()
    assert "| c | b | 1 | 0.001 | NO |" in text and "| c | a |" not in text  # failures listed, not the passes
    assert "driver 12080" in text and "copy_bandwidth_gbps: 4000.0" in text


def test_sections_past_the_budget_are_reported_as_not_run(tmp_path):
    import time

    report = report_skeleton()
    ran = []
    run_sections([("numerics", lambda: ran.append(1) or {"rows": []})], report, tmp_path, budget_s=5.0,
                 started=time.monotonic() - 10.0)
    assert not ran and report["sections"]["numerics"]["status"] == "not run: the 5 s budget was spent"


def test_timing_rows_render_with_unsupported_backends(tmp_path):
    report = report_skeleton()
    report["sections"]["timings"] = {"status": "ok", "rows": [
        timing("sfcm_attention", "fp16 B=1", "triton (jit tiles)", 2e-5, graph_s=1e-5),
        {"op": "sfcm_attention", "case": "fp32 B=1", "impl": "2 x sdpa flash", "unsupported": "No available kernel."}]}
    report["goals"] = [{"goal": "g", "target": 1.5, "measured": None, "met": None}]
    text = _gpucheck_report.markdown(report)
    assert "| triton (jit tiles) | 20.0 us | 50% | 50% | 10.0 us | 50% |" in text
    assert "unsupported: No available kernel." in text and "| g | 1.5 | - | - |" in text
