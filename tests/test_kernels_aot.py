"""Ahead-of-time compilation of every kernel variant for Jetson Orin (sm_87) and Hopper (sm_90), without a GPU.

The CLI runs in a child process without TRITON_INTERPRET (interpreted kernels cannot be compiled), exactly as
a user runs it; the manifest it writes is then checked against the PTX and cubin files themselves.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import _sfcm_attention, aot
from kernels._checks import is_interpreted

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "kernels.aot", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot")
    result = run_cli("--arch", "87", "90", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "manifest.json").read_text())


def needs_compiled_kernels():
    if is_interpreted(_sfcm_attention._sfcm_attention_kernel):
        pytest.skip("TRITON_INTERPRET=1 is set: interpreted kernels cannot be compiled in this process")


def test_every_variant_is_compiled_for_both_architectures(compiled):
    _, manifest = compiled
    names = {entry["name"] for entry in manifest["kernels"]}
    expected = {f"haar_dwt_{d}_sm{a}" for d in ("fp16", "fp32") for a in (87, 90)}
    expected |= {f"sfcm_attention_{d}_d{h}_sm{a}" for d in ("fp16", "fp32") for h in (32, 96) for a in (87, 90)}
    assert names == expected


def test_manifest_describes_the_files(compiled):
    out, manifest = compiled
    for entry in manifest["kernels"]:
        ptx = (out / entry["ptx"]).read_text()
        target = "sm_90a" if entry["arch"] == 90 else f"sm_{entry['arch']}"
        assert re.search(rf"^\.target\s+{target}\b", ptx, re.M), entry["name"]
        assert re.search(rf"\.entry\s+{re.escape(entry['kernel'])}\s*\(", ptx), entry["name"]
        assert f".version {entry['ptx_version']}" in ptx
        assert (out / entry["cubin"]).read_bytes()[:4] == b"\x7fELF"
        assert entry["block"] == [32 * entry["num_warps"], 1, 1]
        # The AOT launcher passes only the declared arguments: no scratch memory, no spills.
        assert entry["global_scratch_size"] == 0 and entry["spill_bytes"] == 0
        assert 0 < entry["registers"] <= 255 and entry["shared_memory"] < 160 * 1024  # fits an Orin SM


def test_orin_ptx_loads_on_jetpack_6_drivers(compiled):
    _, manifest = compiled
    versions = {entry["arch"]: entry["ptx_version"] for entry in manifest["kernels"]}
    assert versions[87] == "8.5"  # CUDA 12.6's driver JIT-compiles PTX ISA up to 8.5


def test_arguments_follow_tensorrts_aot_order(compiled):
    _, manifest = compiled
    for entry in manifest["kernels"]:
        kinds = [argument["kind"] for argument in entry["arguments"]]
        assert kinds == sorted(kinds, key=["input", "int32", "output"].index), entry["name"]
        # Triton appends two scratch pointers to the PTX entry after the declared arguments.
        assert entry["ptx_parameters"] == len(entry["arguments"]) + 2


def test_attention_arguments_are_the_launchers_for_contiguous_tensors(compiled):
    _, manifest = compiled
    entry = next(e for e in manifest["kernels"] if e["name"] == "sfcm_attention_fp16_d96_sm90")
    assert entry["constants"]["SCALE"] == pytest.approx(96 ** -0.5)
    assert [a["name"] for a in entry["arguments"]] == [
        "qp_ptr", "kf_ptr", "vf_ptr", "qf_ptr", "kp_ptr", "vp_ptr", "n_p", "n_f", "heads",
        "stride_pb", "stride_ph", "stride_pn", "stride_fb", "stride_fh", "stride_fn", "ap_ptr", "af_ptr"]
    sizes = {"N_p": 256, "N_f": 49, "heads": 8}
    values = [eval(a["value"], {}, dict(sizes)) for a in entry["arguments"] if a["kind"] == "int32"]  # noqa: S307
    qp, qf = torch.empty(2, 8, 256, 96), torch.empty(2, 8, 49, 96)
    assert values == [256, 49, 8, *qp.stride()[:3], *qf.stride()[:3]]


def test_bfloat16_kernels_compile_for_hopper():
    needs_compiled_kernels()
    for variant in aot.kernel_variants(dtypes=("bf16",), head_dims=(96,)):
        _, entry = aot.compile_variant(variant, 90, None)
        assert entry["spill_bytes"] == 0


def test_a_variant_that_spills_registers_is_refused():
    needs_compiled_kernels()
    variant = aot.kernel_variants(dtypes=("fp32",), head_dims=(128,))[-1]
    variant["constexprs"].update(BLOCK_M=64, BLOCK_N=64)  # float32 64 x 128 tiles do not fit in registers
    with pytest.raises(aot.AOTError, match="spills registers"):
        aot.compile_variant(variant, 90, None)


def test_bad_arguments_get_one_sentence():
    result = run_cli("--arch", "sm_90", "--out", "unused")
    assert result.returncode == 2 and "invalid int value" in result.stderr
    result = run_cli("--arch", "9", "--out", "unused")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: archs must be")


def test_an_architecture_ptxas_cannot_target_gets_one_sentence(tmp_path):
    result = run_cli("--arch", "99", "--out", str(tmp_path / "aot"))
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: The ptxas bundled with Triton " + aot.triton.__version__ + " cannot "
                                     "compile for sm_99a (compute capability 99); use e.g. 87 (Jetson Orin) "
                                     "or 90 (Hopper).")
    assert not (tmp_path / "aot").exists()


def test_an_unwritable_output_folder_gets_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("--arch", "90", "--dtype", "fp16", "--head-dim", "32", "--out", str(blocker / "aot"))
    assert result.returncode == 1 and result.stderr.startswith("error: cannot write the kernels to")
    assert "Traceback" not in result.stderr


def test_reading_a_hidden_parameter_is_detected():
    ptx = (".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u32 k_param_1,\n\t.param .u64 k_param_2\n)\n"
           "{\n\tld.param.b64 %rd1, [k_param_0];\n\tld.param.b32 %r1, [k_param_1];\n")
    assert aot.ptx_entry_parameters(ptx, "k") == 3
    assert not aot.reads_hidden_parameters(ptx, "k", declared=2)
    assert aot.reads_hidden_parameters(ptx + "\tld.param.b64 %rd2, [k_param_2];\n", "k", declared=2)
