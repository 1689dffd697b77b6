"""The fmca:: plugins' pure-Python side: shapes against the model's reference ops, launch arithmetic against the
kernels' own launchers, and PTX selection per GPU architecture from PTX that Triton really compiled here."""

import json

import pytest
import torch

from export.trt_plugin_math import (KernelVariant, check_ptx_loadable, evaluate, haar_dwt_output_shape,
                                    haar_dwt_sizes, launch_plan, load_manifest, ptx_isa_version, ptx_target,
                                    select_variant, sfcm_output_shapes, sfcm_sizes)
from export.trt_plugins import check_baked_constants, choose_kernel, type_combination
from fmca_rt.errors import ConfigError
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference


@pytest.mark.parametrize("shape", [(2, 3, 224, 224), (1, 3, 15, 8), (3, 1, 7, 9)])
def test_haar_dwt_shape_matches_the_reference_op(shape):
    expected = haar_dwt_reference(torch.zeros(shape), (0.5,) * shape[1], (0.2,) * shape[1]).shape
    assert haar_dwt_output_shape(shape) == tuple(expected)
    from kernels._haar_dwt import output_shape  # the kernel launcher's own shape function agrees too

    assert output_shape(shape) == tuple(expected)


def test_sfcm_shapes_match_the_reference_op():
    b, h, n_p, n_f, d = 2, 3, 10, 6, 8
    patch, freq = torch.zeros(b, h, n_p, d), torch.zeros(b, h, n_f, d)
    ap, af = sfcm_attention_reference(patch, freq, freq, freq, patch, patch)
    assert sfcm_output_shapes(patch.shape, freq.shape, freq.shape, freq.shape, patch.shape, patch.shape) == (
        tuple(ap.shape), tuple(af.shape))


def test_shape_functions_work_on_symbolic_sizes():
    """TensorRT hands the functions symbolic expressions; sympy symbols stand in for them here."""
    sympy = pytest.importorskip("sympy")
    b, h, w = sympy.symbols("b h w", positive=True, integer=True)
    shape = haar_dwt_output_shape((b, 3, h, w), cdiv=lambda x, y: sympy.ceiling(x / y))
    assert shape[1] == 12 and shape[2].subs(h, 15) == 8 and shape[3].subs(w, 224) == 112


def test_formulas_accept_arithmetic_cdiv_and_ceil_only():
    names = {"N_p": 256, "N_f": 200, "B": 2, "heads": 8, "W": 225}
    assert evaluate("cdiv(N_p, 32) + cdiv(N_f, 32)", names) == 8 + 7
    assert evaluate("cdiv(ceil(W/2), 64)", names) == 2 and evaluate("ceil(W/2)", names) == 113
    assert evaluate("B*heads - 1", names) == 15 and evaluate("1", names) == 1
    for bad in ("__import__('os')", "N_p.bit_length()", "N_p ** 2", "max(N_p, 1)", "N_p / 2", "ceil(N_p)", "N_p +"):
        with pytest.raises(ConfigError):
            evaluate(bad, names)
    with pytest.raises(ConfigError, match="uses 'tokens'"):
        evaluate("tokens * 2", names)


def test_baked_constants_must_match_the_node(tmp_path):
    variant = KernelVariant("sfcm_attention", "k", 87, tmp_path / "k.ptx", 4, 0, constants={"SCALE": 32 ** -0.5})
    check_baked_constants(variant, SCALE=32 ** -0.5)
    with pytest.raises(ConfigError, match="compiled with SCALE"):
        check_baked_constants(variant, SCALE=64 ** -0.5)
    haar = KernelVariant("haar_dwt", "k", 87, tmp_path / "k.ptx", 4, 0, constants={"MEAN": [0.485, 0.456, 0.406]})
    with pytest.raises(ConfigError, match="recompile the kernels"):
        check_baked_constants(haar, MEAN=[0.5, 0.5, 0.5])


def test_type_combination_text():
    assert type_combination(["fp16", "fp32"], 2) == "FP16|FP32, FP16|FP32"
    assert type_combination(["fp32"], 3) == "FP32, FP32, FP32"


# ---- a real manifest: kernels.aot compiles the project's kernels here, for Orin (sm_87) and Hopper (sm_90) ---
@pytest.fixture(scope="module")
def aot_dir(tmp_path_factory):
    pytest.importorskip("triton")
    from kernels.aot import compile_kernels

    out = tmp_path_factory.mktemp("aot")
    compile_kernels((87, 90), out, dtypes=("fp32", "fp16"), head_dims=(32,))
    return out


def test_manifest_reads_every_variant_with_launch_arguments_in_tensorrt_order(aot_dir):
    variants = load_manifest(aot_dir)
    assert {(v.kernel, v.dtype, v.arch) for v in variants} == {
        (k, d, a) for k in ("haar_dwt", "sfcm_attention") for d in ("fp32", "fp16") for a in (87, 90)}
    haar = select_variant(variants, "haar_dwt", 87)
    assert haar.scalars == ("H", "W") and haar.constants["MEAN"] == pytest.approx([0.485, 0.456, 0.406])


def test_ptx_headers(aot_dir):
    variants = load_manifest(aot_dir)
    targets = {v.arch: ptx_target(v.read_ptx()) for v in variants}
    assert targets[87] == (87, False)
    assert targets[90][0] == 90  # Triton writes arch-specific sm_90a PTX for Hopper


@pytest.mark.parametrize("gpu_arch, chosen", [(87, 87), (90, 90), (89, 87), (86, None), (120, 87)])
def test_ptx_selection_per_architecture(aot_dir, gpu_arch, chosen):
    variants = load_manifest(aot_dir)
    if chosen is None:
        with pytest.raises(ConfigError, match=r"sm_86.*python -m kernels.aot --arch 86"):
            select_variant(variants, "haar_dwt", gpu_arch)
        return
    # An Ada (sm_89) or Blackwell (sm_120) GPU gets the portable sm_87 PTX: sm_90a runs only on sm_90.
    assert select_variant(variants, "haar_dwt", gpu_arch).arch == chosen
    assert select_variant(variants, "sfcm_attention", gpu_arch, "fp16", head_dim=32).arch == chosen


def test_a_head_size_that_was_not_compiled_names_the_fix(aot_dir):
    with pytest.raises(ConfigError, match=r"head size 96.*--arch 87 --head-dim 96"):
        select_variant(load_manifest(aot_dir), "sfcm_attention", 87, "fp16", head_dim=96)


@pytest.mark.parametrize("batch, n_p, n_f, dtype", [(1, 256, 256, "fp32"), (3, 100, 37, "fp16")])
def test_attention_launch_matches_the_kernel_launcher(aot_dir, batch, n_p, n_f, dtype):
    from kernels._sfcm_attention import grid
    from kernels._tiles import attention_tiles

    heads, d = 3, 32
    # The plugin node's tensors are token-major (B x N x heads x D); the launcher sees them as B x heads x N x D.
    qp, qf = torch.zeros(batch, n_p, heads, d), torch.zeros(batch, n_f, heads, d)
    variant = select_variant(load_manifest(aot_dir), "sfcm_attention", 87, dtype, head_dim=d)
    plan = launch_plan(variant, sfcm_sizes(qp.shape, qf.shape))
    block_m = attention_tiles({"fp32": torch.float32, "fp16": torch.float16}[dtype], 87, aot=True).block_m
    assert plan.grid == (*grid(n_p, n_f, batch * heads, block_m), 1)
    assert plan.block_x == 32 * variant.num_warps and plan.shared_mem == variant.shared_mem
    # The integer arguments are those the launcher passes for these tensors: counts, then strides.
    assert plan.scalars == (n_p, n_f, heads, *qp.transpose(1, 2).stride()[:3], *qf.transpose(1, 2).stride()[:3])


def test_haar_dwt_launch_covers_every_output_once(aot_dir):
    from kernels._haar_dwt import BLOCK_H, BLOCK_W

    variant = select_variant(load_manifest(aot_dir), "haar_dwt", 87)
    plan = launch_plan(variant, haar_dwt_sizes((5, 3, 225, 224)))
    assert plan.grid == (-(-112 // BLOCK_W), -(-113 // BLOCK_H), 5 * 3)
    assert plan.scalars == (225, 224) and plan.block_x == variant.num_warps * 32


def test_ptx_isa_against_the_driver(aot_dir):
    variants = load_manifest(aot_dir)
    orin = select_variant(variants, "haar_dwt", 87).read_ptx()
    hopper = select_variant(variants, "haar_dwt", 90).read_ptx()
    check_ptx_loadable(orin, 12060)  # kernels.aot writes PTX ISA 8.0 by default: JetPack 6.2's driver loads it
    check_ptx_loadable(hopper, 13000)
    if ptx_isa_version(hopper) > (8, 5):
        with pytest.raises(ConfigError, match=r"this driver is CUDA 12\.6.*ptx_version option set to 85"):
            choose_kernel(variants, "haar_dwt", 90, "fp32", None, driver_version=12060)


def test_manifest_errors_name_the_command(tmp_path):
    with pytest.raises(ConfigError, match="run `python -m kernels.aot --arch 87 90"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"kernels": [{"op": "haar_dwt"}]}')
    with pytest.raises(ConfigError, match="not a kernel manifest"):
        load_manifest(tmp_path)


def test_arguments_out_of_tensorrt_order_are_refused(aot_dir, tmp_path):
    manifest = json.loads((aot_dir / "manifest.json").read_text())
    entry = manifest["kernels"][0]
    entry["arguments"] = entry["arguments"][-1:] + entry["arguments"][:-1]  # output pointer first
    (tmp_path / "manifest.json").write_text(json.dumps({"kernels": [entry]}))
    with pytest.raises(ConfigError, match="input pointers, int32 scalars, output pointers"):
        load_manifest(tmp_path)


# ---- before the build: kernels checked against the model, compiled for this driver, errors in one sentence ----
def test_a_kernel_beyond_48_kib_of_shared_memory_is_refused(aot_dir):
    import dataclasses

    variants = [dataclasses.replace(v, shared_mem=48 * 1024 + 1) if v.kernel == "haar_dwt" else v
                for v in load_manifest(aot_dir)]
    assert choose_kernel(variants, "sfcm_attention", 87, "fp16", 32).shared_mem <= 48 * 1024
    with pytest.raises(ConfigError, match=r"needs 49153 bytes of shared memory, above the 49152"):
        choose_kernel(variants, "haar_dwt", 87, "fp32")


def plugin_nodes(scale=32 ** -0.5, mean=(0.485, 0.456, 0.406), op_type="SFCMAttention"):
    from onnx import helper

    return [helper.make_node("HaarDWT", ["x"], ["y"], domain="fmca", mean=list(mean), std=[0.229, 0.224, 0.225]),
            helper.make_node(op_type, ["a"] * 6, ["b", "c"], domain="fmca", scale=scale)]


def test_the_kernels_are_checked_against_every_plugin_node_before_the_build(aot_dir):
    from export.trt_plugins import check_kernels_for_model

    variants = load_manifest(aot_dir)
    check_kernels_for_model(variants, 87, plugin_nodes(), head_dim=32)
    with pytest.raises(ConfigError, match=r"compiled with SCALE=\[0\.17677.*\] but the model asks for \[0\.125\]"):
        check_kernels_for_model(variants, 87, plugin_nodes(scale=0.125), head_dim=32)
    with pytest.raises(ConfigError, match=r"compiled with MEAN=.* but the model asks for \[0\.5, 0\.5, 0\.5\]"):
        check_kernels_for_model(variants, 87, plugin_nodes(mean=(0.5, 0.5, 0.5)), head_dim=32)
    with pytest.raises(ConfigError, match="head size 96"):
        check_kernels_for_model(variants, 87, plugin_nodes(), head_dim=96)
    with pytest.raises(ConfigError, match="fmca::Attention2, which this version does not provide"):
        check_kernels_for_model(variants, 87, plugin_nodes(op_type="Attention2"), head_dim=32)


@pytest.mark.parametrize("driver, expected", [(13000, "compiler"), (12060, 85), (12020, 82), (None, None)])
def test_kernels_compiled_now_use_a_ptx_isa_both_driver_and_compiler_read(tmp_path, monkeypatch, driver, expected):
    """A CUDA 13 driver loads ISA 9.x, which the CUDA 12.9 ptxas bundled with Triton refuses: the lower one wins."""
    pytest.importorskip("triton")
    import kernels.aot

    from export.trt_plugin_setup import compile_for_this_gpu, compiler_ptx_isa

    asked = []

    def compile_kernels(archs, out, dtypes, head_dims, ptx_versions):
        asked.append(ptx_versions)
        raise ConfigError("stop here")

    monkeypatch.setattr(kernels.aot, "compile_kernels", compile_kernels)
    with pytest.raises(ConfigError, match="stop here"):
        compile_for_this_gpu(90, 32, tmp_path, driver)
    isa = compiler_ptx_isa(90) if expected == "compiler" else expected
    assert asked == [None if isa is None else {90: isa}]
    if expected == "compiler":
        assert isa < 90  # Triton 3.8 bundles CUDA 12.9's ptxas: ISA 8.8


def test_a_triton_failure_is_one_sentence(tmp_path, monkeypatch):
    pytest.importorskip("triton")
    import kernels.aot

    from export.trt_plugin_setup import compile_for_this_gpu
    from fmca_rt.errors import EngineError

    def compile_kernels(*args):
        raise RuntimeError("ptxas fatal   : Unsupported .version 9.0; current version is '8.8'\nptxas: more detail")

    monkeypatch.setattr(kernels.aot, "compile_kernels", compile_kernels)
    with pytest.raises(EngineError) as raised:
        compile_for_this_gpu(87, 32, tmp_path, None)
    assert str(raised.value) == ("Triton could not compile the kernels for sm_87 (ptxas fatal   : Unsupported .version "
                                 "9.0; current version is '8.8'); compile them where that works with `python -m "
                                 "kernels.aot --arch 87 --out DIR` and pass --kernels DIR.")
