"""The fmca:: plugins' pure-Python side: shapes against the model's reference ops, launch arithmetic against the
kernels' own launchers, and PTX selection per GPU architecture from PTX that Triton really compiled here."""

import json

import pytest
import torch

from export.trt_plugin_math import (KernelVariant, check_ptx_loadable, evaluate, haar_dwt_output_shape,
                                    haar_dwt_sizes, launch_plan, load_manifest, ptx_isa_version, ptx_target,
                                    select_variant, sfcm_output_shapes, sfcm_sizes)
from export.trt_plugins import check_baked_constants, type_combination
from fmca_rt.errors import ConfigError
from training.frequency import haar_dwt_reference
from training.sfcm import sfcm_attention_reference


@pytest.mark.parametrize("shape", [(2, 3, 224, 224), (1, 3, 15, 8), (3, 1, 7, 9)])
def test_haar_dwt_shape_matches_the_reference_op(shape):
    expected = haar_dwt_reference(torch.zeros(shape), (0.5,) * shape[1], (0.2,) * shape[1]).shape
    assert haar_dwt_output_shape(shape) == tuple(expected)


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


def test_formulas_accept_arithmetic_and_cdiv_only():
    names = {"n_p": 256, "n_f": 200, "BLOCK_M": 32, "batch": 2, "heads": 8}
    assert evaluate("cdiv(n_p, BLOCK_M) + cdiv(n_f, BLOCK_M)", names) == 8 + 7
    assert evaluate("batch * heads - 1", names) == 15 and evaluate(4, names) == 4
    for bad in ("__import__('os')", "n_p.bit_length()", "n_p ** 2", "max(n_p, 1)", "n_p +"):
        with pytest.raises(ConfigError):
            evaluate(bad, names)
    with pytest.raises(ConfigError, match="uses 'tokens'"):
        evaluate("tokens * 2", names)


def sfcm_variant(tmp_path, **changes):
    values = dict(kernel="sfcm_attention", name="_sfcm_attention_kernel", arch=87, ptx_path=tmp_path / "a.ptx",
                  num_warps=4, shared_mem=8192, dtype="fp32",
                  grid=("cdiv(n_p, BLOCK_M) + cdiv(n_f, BLOCK_M)", "batch * heads"),
                  scalars=("n_p", "n_f", "heads", "heads * n_p * HEAD_DIM", "n_p * HEAD_DIM", "HEAD_DIM",
                           "heads * n_f * HEAD_DIM", "n_f * HEAD_DIM", "HEAD_DIM"),
                  constants={"BLOCK_M": 32, "HEAD_DIM": 32, "SCALE": 32 ** -0.5})
    values.update(changes)
    return KernelVariant(**values)


@pytest.mark.parametrize("batch, n_p, n_f", [(1, 256, 256), (3, 100, 37)])
def test_attention_launch_matches_the_kernel_launcher(tmp_path, batch, n_p, n_f):
    from kernels._sfcm_attention import grid

    heads, d = 3, 32
    qp, qf = torch.zeros(batch, heads, n_p, d), torch.zeros(batch, heads, n_f, d)
    plan = launch_plan(sfcm_variant(tmp_path), sfcm_sizes(qp.shape, qf.shape))
    assert plan.grid == (*grid(n_p, n_f, batch * heads, 32), 1)
    assert plan.block_x == 128 and plan.shared_mem == 8192
    # The stride arguments are those the launcher passes for contiguous tensors.
    assert plan.scalars == (n_p, n_f, heads, *qp.stride()[:3], *qf.stride()[:3])


def test_baked_constants_must_match_the_node(tmp_path):
    variant = sfcm_variant(tmp_path)
    check_baked_constants(variant, SCALE=32 ** -0.5)
    with pytest.raises(ConfigError, match="compiled with SCALE"):
        check_baked_constants(variant, SCALE=64 ** -0.5)
    haar = sfcm_variant(tmp_path, kernel="haar_dwt", constants={"MEAN": [0.485, 0.456, 0.406]})
    with pytest.raises(ConfigError, match="recompile the kernels"):
        check_baked_constants(haar, MEAN=[0.5, 0.5, 0.5])


def test_type_combination_text():
    assert type_combination(["fp16", "fp32"], 2) == "FP16|FP32, FP16|FP32"
    assert type_combination(["fp32"], 3) == "FP32, FP32, FP32"


# ---- real PTX from Triton, compiled here for Orin (sm_87) and Hopper (sm_90) ------------------------------
@pytest.fixture(scope="module")
def compiled_haar_dwt(tmp_path_factory):
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels._haar_dwt import _haar_dwt_kernel

    out = tmp_path_factory.mktemp("kernels")
    constants = {"CHANNELS": 3, "MEAN": (0.485, 0.456, 0.406), "STD": (0.229, 0.224, 0.225), "BLOCK_H": 4, "BLOCK_W": 64}
    signature = {"x_ptr": "*fp32", "height": "i32", "width": "i32", "out_ptr": "*fp32",
                 **{name: "constexpr" for name in constants}}
    entries = []
    for arch in (87, 90):
        compiled = triton.compile(ASTSource(fn=_haar_dwt_kernel, signature=signature, constexprs=constants),
                                  target=GPUTarget("cuda", arch, 32))
        (out / f"haar_dwt_sm{arch}.ptx").write_text(compiled.asm["ptx"])
        entries.append({"kernel": "haar_dwt", "name": compiled.metadata.name, "arch": arch,
                        "ptx": f"haar_dwt_sm{arch}.ptx", "num_warps": compiled.metadata.num_warps,
                        "shared": compiled.metadata.shared, "scalars": ["height", "width"],
                        "grid": ["cdiv(out_w, BLOCK_W)", "cdiv(out_h, BLOCK_H)", "batch"],
                        "constants": {"BLOCK_H": 4, "BLOCK_W": 64}})
    (out / "manifest.json").write_text(json.dumps({"kernels": entries}))
    return out


def test_ptx_headers(compiled_haar_dwt):
    variants = load_manifest(compiled_haar_dwt)
    targets = {v.arch: ptx_target(v.read_ptx()) for v in variants}
    assert targets[87] == (87, False)
    assert targets[90][0] == 90  # Triton writes arch-specific sm_90a PTX for Hopper
    assert all(ptx_isa_version(v.read_ptx()) >= (8, 0) for v in variants)


@pytest.mark.parametrize("gpu_arch, chosen", [(87, 87), (90, 90), (89, 87), (86, None), (120, 87)])
def test_ptx_selection_per_architecture(compiled_haar_dwt, gpu_arch, chosen):
    variants = load_manifest(compiled_haar_dwt)
    if chosen is None:
        with pytest.raises(ConfigError, match=r"sm_86.*python -m kernels.aot --arch 86"):
            select_variant(variants, "haar_dwt", gpu_arch)
        return
    # An Ada (sm_89) or Blackwell (sm_120) GPU gets the portable sm_87 PTX: sm_90a runs only on sm_90.
    assert select_variant(variants, "haar_dwt", gpu_arch).arch == chosen


def test_haar_dwt_launch_covers_every_output_once(compiled_haar_dwt):
    variant = select_variant(load_manifest(compiled_haar_dwt), "haar_dwt", 87)
    plan = launch_plan(variant, haar_dwt_sizes((5, 3, 225, 224)))
    assert plan.grid == (2, 29, 5)  # ceil(112 / 64), ceil(113 / 4), batch
    assert plan.scalars == (225, 224) and plan.block_x == variant.num_warps * 32


def test_ptx_isa_against_the_driver(compiled_haar_dwt):
    ptx = select_variant(load_manifest(compiled_haar_dwt), "haar_dwt", 87).read_ptx()
    isa = ptx_isa_version(ptx)
    check_ptx_loadable(ptx, 13000)  # a CUDA 13.0 driver loads any PTX up to ISA 9.0
    if isa > (8, 5):
        with pytest.raises(ConfigError, match=r"this driver is CUDA 12\.6.*ptx_version option set to 85"):
            check_ptx_loadable(ptx, 12060)  # JetPack 6.2


def test_manifest_errors_name_the_command(tmp_path):
    with pytest.raises(ConfigError, match="run `python -m kernels.aot --arch 87 90"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"kernels": [{"kernel": "haar_dwt"}]}')
    with pytest.raises(ConfigError, match="not a kernel manifest"):
        load_manifest(tmp_path)
