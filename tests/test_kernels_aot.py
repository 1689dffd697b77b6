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

from kernels import _ptx, _sfcm_attention, aot
from kernels._checks import is_interpreted
from kernels.compiled import ptxas_usage

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
        # The AOT launcher passes only the declared arguments and opts in to no extra shared memory.
        assert entry["global_scratch_size"] == 0 and entry["spill_bytes"] == 0
        assert 0 < entry["registers"] <= 255 and entry["shared_memory"] <= 48 * 1024


def test_default_ptx_loads_on_every_cuda_12_driver(compiled):
    # ISA 8.0 (CUDA 12.0): H100 hosts on r535-r570 drivers and JetPack 6 load it; Triton's default (its ptxas's
    # newest, 8.8) would need an r575 driver.
    _, manifest = compiled
    assert {entry["ptx_version"] for entry in manifest["kernels"]} == {"8.0"}


def test_the_isa_is_the_lower_of_the_drivers_and_the_bundled_ptxas():
    newest_readable = aot.bundled_ptxas_isa(90)  # 88 with Triton 3.8 (CUDA 12.9 ptxas)
    assert aot.ptx_isa(90, 85) == 85  # a CUDA 12.5/12.6 driver
    assert aot.ptx_isa(90, 91) == newest_readable  # a CUDA 13.1 driver reads more than ptxas writes
    assert aot.ptx_isa(90) == aot.ptx_isa(87) == 80


def test_a_cuda_13_driver_gets_ptx_the_bundled_ptxas_can_assemble(tmp_path):
    # Before: Triton was asked for ISA 9.0, wrote `.version 9.0`, and its CUDA 12.9 ptxas refused the file.
    needs_compiled_kernels()
    manifest = aot.compile_kernels([90], tmp_path, ("fp16",), (32,), ptx_versions={90: 90})
    readable = aot.bundled_ptxas_isa(90)
    assert {e["ptx_version"] for e in manifest["kernels"]} == {f"{readable // 10}.{readable % 10}"}


def test_arguments_follow_tensorrts_aot_order(compiled):
    _, manifest = compiled
    for entry in manifest["kernels"]:
        kinds = [argument["kind"] for argument in entry["arguments"]]
        assert kinds == sorted(kinds, key=["input", "int32", "output"].index), entry["name"]
        # The PTX TensorRT gets declares exactly the arguments; Triton's cubin has its two scratch pointers after.
        assert entry["ptx_parameters"] == len(entry["arguments"])
        assert entry["cubin_parameters"] == len(entry["arguments"]) + aot.HIDDEN_PARAMETERS


def test_the_hidden_parameters_stay_only_when_asked(tmp_path):
    # For the TensorRT machine's check of whether its launcher tolerates an entry with more parameters.
    needs_compiled_kernels()
    manifest = aot.compile_kernels([90], tmp_path, ("fp16",), (32,), keep_hidden_parameters=True)
    for entry in manifest["kernels"]:
        ptx = (tmp_path / entry["ptx"]).read_text()
        assert entry["ptx_parameters"] == len(_ptx.entry_parameters(ptx, entry["kernel"]))
        assert entry["ptx_parameters"] == len(entry["arguments"]) + aot.HIDDEN_PARAMETERS


def test_the_ptx_for_tensorrt_declares_only_the_arguments_and_assembles(compiled):
    out, manifest = compiled
    for entry in manifest["kernels"][:3]:
        ptx = (out / entry["ptx"]).read_text()
        assert len(_ptx.entry_parameters(ptx, entry["kernel"])) == len(entry["arguments"])
        registers, spills, _ = ptxas_usage(ptx, entry["arch"])  # the edited PTX is valid PTX
        assert spills == 0 and registers <= entry["registers"]


def test_attention_arguments_are_the_launchers_for_token_major_tensors(compiled):
    _, manifest = compiled
    entry = next(e for e in manifest["kernels"] if e["name"] == "sfcm_attention_fp16_d96_sm90")
    assert entry["constants"]["SCALE"] == pytest.approx(96 ** -0.5)
    assert [a["name"] for a in entry["arguments"]] == [
        "qp_ptr", "kf_ptr", "vf_ptr", "qf_ptr", "kp_ptr", "vp_ptr", "n_p", "n_f", "heads",
        "stride_pb", "stride_ph", "stride_pn", "stride_fb", "stride_fh", "stride_fn", "ap_ptr", "af_ptr"]
    sizes = {"N_p": 256, "N_f": 49, "heads": 8}
    values = [eval(a["value"], {}, dict(sizes)) for a in entry["arguments"] if a["kind"] == "int32"]  # noqa: S307
    # The plugin's tensors are B x N x heads x D; the kernel indexes them as B x heads x N x D views.
    qp, qf = torch.empty(2, 256, 8, 96).transpose(1, 2), torch.empty(2, 49, 8, 96).transpose(1, 2)
    assert values == [256, 49, 8, *qp.stride()[:3], *qf.stride()[:3]]


def test_bfloat16_kernels_compile_for_hopper():
    needs_compiled_kernels()
    for variant in aot.kernel_variants(90, dtypes=("bf16",), head_dims=(96,)):
        _, entry, _ = aot.compile_variant(variant, 90)
        assert entry["spill_bytes"] == 0


def test_a_variant_that_spills_registers_is_refused():
    needs_compiled_kernels()
    variant = aot.kernel_variants(87, dtypes=("fp32",), head_dims=(96,))[-1]
    variant["constexprs"].update(BLOCK_M=64, BLOCK_N=32)  # float32 64 x 96 query tiles do not fit in registers
    with pytest.raises(aot.AOTError, match="spills registers"):
        aot.compile_variant(variant, 87)


def test_a_variant_above_48_kib_of_shared_memory_is_refused():
    # The JIT tiles for head size 96 on Hopper (three stages of 64-token key/value tiles) take 84 KiB.
    needs_compiled_kernels()
    (variant,) = _sfcm_attention.variants(90, ("fp16",), (96,), aot=False)
    with pytest.raises(aot.AOTError, match=r"needs 86016 bytes of shared memory, above the 49152"):
        aot.compile_variant(variant, 90)


@pytest.mark.parametrize("arch, isa, message", [
    (90, "74", "PTX ISA 7.4 cannot express code for sm_90, which needs 8.0"),  # LLVM would abort the process
    (87, "74", "could not compile haar_dwt_fp16_sm87 at PTX ISA 7.4"),  # ptxas refuses an instruction
])
def test_an_isa_too_old_for_the_code_gets_one_sentence(tmp_path, arch, isa, message):
    result = run_cli("--arch", str(arch), "--dtype", "fp16", "--head-dim", "32", "--ptx-version", isa,
                     "--out", str(tmp_path / "aot"))
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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


PTX = (".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .u32 k_param_1,\n\t.param .u64 k_param_2,\n"
       "\t.param .u64 k_param_3\n)\n.reqntid 128\n{\n\tld.param.b64 %rd1, [k_param_0];\n\tld.param.b32 %r1, [k_param_1];\n}\n")


def test_unread_trailing_parameters_are_stripped():
    stripped = _ptx.strip_unread_parameters(PTX, "k", keep=2)
    assert _ptx.entry_parameters(stripped, "k") == [".param .u64 k_param_0", ".param .u32 k_param_1"]
    assert stripped.endswith(")\n.reqntid 128\n{\n\tld.param.b64 %rd1, [k_param_0];\n\tld.param.b32 %r1, [k_param_1];\n}\n")


def test_a_parameter_that_is_read_is_never_stripped():
    reads_scratch = PTX.replace("}\n", "\tld.param.b64 %rd2, [k_param_3];\n}\n")
    with pytest.raises(_ptx.PTXError, match=r"reads parameter\(s\) \[3\] beyond its 2 declared arguments"):
        _ptx.strip_unread_parameters(reads_scratch, "k", keep=2)
